import Foundation
import GatewayPostgres
import PostgresNIO

/// Retention for a PostgreSQL trail: every node's chain is cut at its own newest signed checkpoint older than the
/// date, archived (one section per node, each closed by its checkpoint), then dropped in one transaction that
/// also stores each cut as that node's anchor.
enum AuditPostgresPruner {
    private typealias Reader = AuditPostgresReader.Reader

    private struct Plan {
        var node: String
        var anchorSeq: Int64
        var cut: AuditCheckpoint
    }

    static func prune(url urlText: String, beforeMicros: Int64, archive: String) throws -> PruneResult {
        let url = try PostgresURL(urlText)
        let connection = try PostgresConnection.blockingConnect(url, id: 4, logger: AuditPostgresReader.logger)
        defer { try? connection.close().wait() }
        let reader = Reader(connection: connection)
        do {
            return try prune(reader, beforeMicros: beforeMicros, archive: archive)
        } catch {
            _ = try? reader.run("ROLLBACK")
            throw PostgresStore.storeError(error, url: url)
        }
    }

    private static func prune(_ reader: Reader, beforeMicros: Int64, archive: String) throws -> PruneResult {
        var reader = reader
        // Planned and archived in one snapshot, so the archive holds exactly what the plan names; a trail from before
        // `canonical_version` is read as a reader reads it (a prune deletes and anchors, it does not migrate).
        guard try reader.beginSnapshot() else { throw AuditError.io("the database holds no audit trail (no audit_records table)") }
        var plans: [Plan] = []
        for node in try reader.nodes() {
            let anchorSeq = try reader.run("SELECT seq FROM audit_anchors WHERE node_id = \(node)").first?.decode(Int64.self) ?? 0
            let firstNewer = try reader.run(
                "SELECT MIN(seq) FROM audit_records WHERE node_id = \(node) AND time_us >= \(beforeMicros)"
            ).first?.decode(Int64?.self) ?? nil
            let limit = firstNewer.map { $0 - 1 } ?? Int64.max
            guard let cut = try reader.run("""
                SELECT node_id, seq, time_us, hash, key_id, public_key, signature FROM audit_checkpoints
                WHERE node_id = \(node) AND seq > \(anchorSeq) AND seq <= \(limit) ORDER BY seq DESC LIMIT 1
                """).first.map({ AuditCheckpoint(row: try AuditPostgresReader.row($0)) })
            else { continue }
            let recordHash = try reader.run("SELECT hash FROM audit_records WHERE node_id = \(node) AND seq = \(cut.seq)")
                .first?.decode(String.self)
            guard recordHash == cut.hash else {
                throw AuditError.io("node \(node): checkpoint at seq \(cut.seq) does not match its record; run `audit verify` before pruning")
            }
            plans.append(Plan(node: node, anchorSeq: anchorSeq, cut: cut))
        }
        guard !plans.isEmpty else {
            try reader.run("COMMIT")
            return PruneResult(archivedRecords: 0, anchor: nil)
        }

        let output = try AuditOutput(path: archive)
        var count = 0
        for plan in plans {
            var after = plan.anchorSeq
            while after < plan.cut.seq {
                var binds = AuditPostgresReader.binds(plan.node, after)
                binds.append(plan.cut.seq)
                let page = try AuditPostgresReader.entries(reader.run(PostgresQuery(
                    unsafeSQL: """
                        SELECT \(reader.columns) FROM audit_records WHERE node_id = $1 AND seq > $2 AND seq <= $3
                        ORDER BY seq LIMIT \(AuditPostgresReader.pageSize)
                        """,
                    binds: binds)))
                for entry in page { try output.write(AuditExportFormat.jsonl.line(for: entry)) }
                count += page.count
                guard let last = page.last else { break }
                after = last.seq
            }
            try output.write("{\"checkpoint\":\(plan.cut.jsonLine)}\n")
        }
        try output.sync()
        try output.close()
        try reader.run("COMMIT")

        // Only once the archive is on disk; every node's cut in one transaction.
        try reader.run("BEGIN")
        for plan in plans {
            let cut = plan.cut
            try reader.run("DELETE FROM audit_records WHERE node_id = \(plan.node) AND seq <= \(cut.seq)")
            try reader.run("DELETE FROM audit_checkpoints WHERE node_id = \(plan.node) AND seq < \(cut.seq)")
            try reader.run("""
                INSERT INTO audit_anchors (node_id, seq, time_us, hash, key_id, public_key, signature)
                VALUES (\(cut.nodeID), \(cut.seq), \(cut.timeMicros), \(cut.hash), \(cut.keyID), \(cut.publicKey), \(cut.signature))
                ON CONFLICT (node_id) DO UPDATE SET seq = excluded.seq, time_us = excluded.time_us, hash = excluded.hash,
                    key_id = excluded.key_id, public_key = excluded.public_key, signature = excluded.signature
                """)
        }
        try reader.run("COMMIT")
        return PruneResult(archivedRecords: count, anchor: plans.last?.cut, anchors: plans.map(\.cut))
    }
}
