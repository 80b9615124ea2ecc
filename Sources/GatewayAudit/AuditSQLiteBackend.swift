import Foundation
import GRDB

/// The embedded audit store: one SQLite file per gateway, one chain in it.
final class AuditSQLiteBackend: AuditBackend {
    private let path: String
    private let durability: AuditDurability
    private let lockTimeout: TimeInterval
    private(set) var database: DatabaseQueue?

    init(path: String, durability: AuditDurability, lockTimeout: TimeInterval) {
        self.path = path
        self.durability = durability
        self.lockTimeout = lockTimeout
    }

    func open() throws -> AuditChainHead {
        let opened = try AuditDatabase.openForWriting(path: path, durability: durability, lockTimeout: lockTimeout)
        let head = try opened.read { db -> AuditChainHead in
            let checkpointSeq = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_checkpoints") ?? 0
            if let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1") {
                return AuditChainHead(lastSeq: row["seq"], lastHash: row["hash"], lastCheckpointSeq: checkpointSeq)
            }
            if let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_anchor WHERE id = 1") {
                return AuditChainHead(lastSeq: row["seq"], lastHash: row["hash"], lastCheckpointSeq: max(checkpointSeq, row["seq"]))
            }
            return AuditChainHead(lastSeq: 0, lastHash: AuditCanonical.genesisHash, lastCheckpointSeq: checkpointSeq)
        }
        database = opened
        return head
    }

    func append(_ rows: [AuditChainedRow], checkpoint: AuditCheckpoint?) throws {
        guard let database else { throw AuditError.unavailable("audit store not open") }
        try database.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                let insert = try db.cachedStatement(sql: AuditEntry.insertSQL)
                for row in rows { try insert.execute(arguments: StatementArguments(row.allValues)) }
                if let checkpoint { try db.execute(sql: AuditCheckpoint.insertSQL, arguments: checkpoint.insertArguments) }
                return .commit
            }
        }
    }

    var closesAfterFailure: Bool { false }

    func close() {
        try? database?.close()
        database = nil
    }
}
