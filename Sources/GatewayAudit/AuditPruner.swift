import Foundation
import GRDB
import GatewayPostgres

/// What a prune did.
public struct PruneResult: Sendable {
    /// Records written to the archive and deleted from the store.
    public var archivedRecords: Int
    /// The checkpoint the remaining chain now starts from (the last node's, in a PostgreSQL trail); nil when
    /// nothing could be pruned.
    public var anchor: AuditCheckpoint?
    /// Every chain's new anchor: one per node pruned (a SQLite file has one chain).
    public var anchors: [AuditCheckpoint] = []
}

/// Retention: archive, then delete, never the other way round.
public enum AuditPruner {
    /// Moves records older than `beforeMicros` into a JSONL archive and deletes them.
    ///
    /// The cut is the newest signed checkpoint whose records all precede the date, so no signing key is needed
    /// and the remaining chain starts from a signed anchor: the archive ends with that checkpoint, and
    /// `audit verify` checks the store from it. Records after that checkpoint stay until a later prune.
    public static func prune(path: String, beforeMicros: Int64, archive: String) throws -> PruneResult {
        if PostgresURL.isPostgresURL(path) {
            return try AuditPostgresPruner.prune(url: path, beforeMicros: beforeMicros, archive: archive)
        }
        let database = try AuditDatabase.openForMaintenance(path: path)
        defer { try? database.close() }
        let plan: (anchorSeq: Int64, cut: AuditCheckpoint)? = try database.read { db in
            let anchorSeq = try Int64.fetchOne(db, sql: "SELECT seq FROM audit_anchor WHERE id = 1") ?? 0
            let (clause, arguments) = try AuditFilter(sinceMicros: beforeMicros).whereClause(db)
            let firstNewer = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit_records\(clause)", arguments: arguments)
            let limit = firstNewer.map { $0 - 1 } ?? Int64.max
            guard let row = try Row.fetchOne(
                db, sql: "SELECT * FROM audit_checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
                arguments: [anchorSeq, limit])
            else { return nil }
            let cut = AuditCheckpoint(row: row)
            let recordHash = try String.fetchOne(db, sql: "SELECT hash FROM audit_records WHERE seq = ?", arguments: [cut.seq])
            guard recordHash == cut.hash else {
                throw AuditError.io("checkpoint at seq \(cut.seq) does not match its record; run `audit verify` before pruning")
            }
            return (anchorSeq, cut)
        }
        guard let plan else { return PruneResult(archivedRecords: 0, anchor: nil) }

        let output = try AuditOutput(path: archive)
        var count = 0
        try database.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records WHERE seq > ? AND seq <= ? ORDER BY seq", arguments: [plan.anchorSeq, plan.cut.seq])
            while let row = try rows.next() {
                try output.write(AuditExportFormat.jsonl.line(for: AuditEntry(row: row)))
                count += 1
            }
        }
        try output.write("{\"checkpoint\":\(plan.cut.jsonLine)}\n")
        try output.sync()
        try output.close()

        try database.write { db in
            try db.execute(sql: "DELETE FROM audit_records WHERE seq <= ?", arguments: [plan.cut.seq])
            try db.execute(sql: "DELETE FROM audit_checkpoints WHERE seq < ?", arguments: [plan.cut.seq])
            // A mark that reaches past the cut stays: it still covers the records after it.
            try db.execute(sql: "DELETE FROM audit_time_marks WHERE last_seq <= ?", arguments: [plan.cut.seq])
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO audit_anchor (id, seq, node_id, time_us, hash, key_id, public_key, signature)
                    VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: plan.cut.insertArguments)
        }
        return PruneResult(archivedRecords: count, anchor: plan.cut, anchors: [plan.cut])
    }
}
