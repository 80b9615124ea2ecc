import Foundation
import GRDB
import GatewayPostgres
import Logging
import PostgresNIO

/// `klarna-gateway store copy --audit-from FILE`: an embedded node's audit chain (its SQLite file) into a shared
/// PostgreSQL trail, record for record with the same sequence numbers, hashes and signed checkpoints, so the chain
/// and its shipped checkpoint file stay verifiable after the move.
public enum AuditCopy {
    /// What was copied.
    public struct Report: Sendable, Equatable, CustomStringConvertible {
        /// The node whose chain was copied.
        public var nodeID: String
        /// Records copied.
        public var records: Int
        /// Checkpoints copied.
        public var checkpoints: Int
        /// The last sequence number, the same in both trails.
        public var lastSeq: Int64

        /// One line.
        public var description: String {
            "audit chain of node \(nodeID): \(records) records up to seq \(lastSeq), \(checkpoints) checkpoints"
        }
    }

    private static let logger = Logger(label: "klarna-gateway.audit-copy", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Copies the chain in the SQLite file `source` into the PostgreSQL trail `destination`, which must hold
    /// nothing of that node yet, then verifies both: intact, and ending at the same sequence number and hash.
    public static func copy(from source: String, to destination: String) throws -> Report {
        guard !PostgresURL.isPostgresURL(source), PostgresURL.isPostgresURL(destination) else {
            throw AuditError.io("the audit trail is copied from a SQLite file into PostgreSQL only (a SQLite file holds one node's chain)")
        }
        let database = try AuditDatabase.openForReading(path: source)
        defer { try? database.close() }
        let url = try PostgresURL(destination)
        let connection = try PostgresConnection.blockingConnect(url, id: 3, logger: logger)
        defer { try? connection.close().wait() }
        @discardableResult
        func run(_ query: PostgresQuery) throws -> [PostgresRow] {
            do {
                return try connection.blockingQuery(query, logger: logger)
            } catch {
                throw PostgresStore.storeError(error, url: url)
            }
        }
        try AuditPostgresSchema.migrate(connection, logger: logger)

        var report = try database.read { db -> Report in
            guard try db.tableExists("audit_records") else { throw AuditError.io("\(source) is not an audit store") }
            let nodes = try String.fetchAll(db, sql: "SELECT DISTINCT node_id FROM audit_records UNION SELECT node_id FROM audit_checkpoints")
            guard nodes.count == 1, let nodeID = nodes.first else {
                throw AuditError.io("\(source) holds \(nodes.count) node ids (\(nodes.joined(separator: ", "))); expected one chain")
            }
            let present = try run("""
                SELECT (SELECT COUNT(*) FROM audit_records WHERE node_id = \(nodeID))
                     + (SELECT COUNT(*) FROM audit_checkpoints WHERE node_id = \(nodeID))
                     + (SELECT COUNT(*) FROM audit_anchors WHERE node_id = \(nodeID))
                """).first?.decode(Int64.self) ?? 0
            guard present == 0 else {
                throw AuditError.io("\(url) already holds audit records of node \(nodeID); copy only into a trail without that node")
            }
            var report = Report(nodeID: nodeID, records: 0, checkpoints: 0, lastSeq: 0)
            try run("BEGIN")
            // Held until commit: a gateway starting with this node id waits rather than interleaving the chain.
            try run("SELECT pg_advisory_xact_lock(hashtextextended('klarna-gateway audit chain ' || \(nodeID), 0))")
            if let anchor = try Row.fetchOne(db, sql: "SELECT * FROM audit_anchor WHERE id = 1").map(AuditCheckpoint.init(row:)) {
                try run("""
                    INSERT INTO audit_anchors (node_id, seq, time_us, hash, key_id, public_key, signature)
                    VALUES (\(anchor.nodeID), \(anchor.seq), \(anchor.timeMicros), \(anchor.hash), \(anchor.keyID),
                        \(anchor.publicKey), \(anchor.signature))
                    """)
                report.lastSeq = anchor.seq
            }
            for checkpoint in try Row.fetchAll(db, sql: "SELECT * FROM audit_checkpoints ORDER BY seq").map(AuditCheckpoint.init(row:)) {
                try run(AuditPostgresBackend.insert(checkpoint))
                report.checkpoints += 1
            }
            let rows = try Row.fetchCursor(db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records ORDER BY seq")
            var batch: [AuditEntry] = []
            func flush() throws {
                guard let insert = AuditPostgresBackend.insert([batch], checkpoint: nil) else { return }
                try run(insert)
                batch.removeAll(keepingCapacity: true)
            }
            while let row = try rows.next() {
                let entry = AuditEntry(row: row)
                batch.append(entry)
                report.records += 1
                report.lastSeq = entry.seq
                // Bounds memory, not parameters: a statement binds one array per column.
                if batch.count == 1_000 { try flush() }
            }
            try flush()
            try run("COMMIT")
            return report
        }

        let sourceReport = try AuditVerifier.verify(path: source)
        let copied = try AuditVerifier.verify(path: destination)
        guard let chain = copied.chains.first(where: { $0.nodeID == report.nodeID }),
            chain.recordsChecked == sourceReport.recordsChecked, chain.lastSeq == sourceReport.lastSeq,
            chain.problemCount == sourceReport.problemCount
        else {
            throw AuditError.io("the copied audit chain of node \(report.nodeID) does not verify like its source")
        }
        report.lastSeq = chain.lastSeq
        return report
    }
}
