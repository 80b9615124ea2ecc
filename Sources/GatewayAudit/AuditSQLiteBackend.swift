import Foundation
import GRDB
import GRDBSQLite

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

    func append(_ segments: [[AuditEntry]], checkpoint: AuditCheckpoint?) throws {
        guard let database else { throw AuditError.unavailable("audit store not open") }
        try database.writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                // One prepared statement for the life of the connection, its values bound straight from each
                // entry: GRDB's StatementArguments would box 36 DatabaseValues per record first.
                let insert = try db.cachedStatement(sql: AuditEntry.insertSQL)
                let statement = insert.sqliteStatement
                for segment in segments {
                    // Entries are read in place: copying one out would retain and release its 30-odd strings.
                    for index in segment.indices {
                        var binder = SQLiteBinder(statement: statement)
                        binder.integer(segment[index].seq)
                        segment[index].visitFieldsAfterSeq(&binder)
                        binder.text(segment[index].prevHash)
                        binder.text(segment[index].hash)
                        let code = sqlite3_step(statement)
                        sqlite3_reset(statement)
                        guard code == SQLITE_DONE else {
                            throw DatabaseError(
                                resultCode: ResultCode(rawValue: code), message: db.sqliteConnection.map { String(cString: sqlite3_errmsg($0)) },
                                sql: AuditEntry.insertSQL)
                        }
                    }
                }
                sqlite3_clear_bindings(statement)
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

/// Binds an entry's columns in `AuditEntry.insertSQL` order to a prepared statement.
private struct SQLiteBinder: AuditFieldVisitor {
    /// Tells SQLite to copy the bytes: they live only as long as the closure that lends them.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self) }
    let statement: OpaquePointer
    private var index: Int32 = 1

    init(statement: OpaquePointer) { self.statement = statement }

    mutating func text(_ value: String?) {
        defer { index += 1 }
        guard var value else {
            sqlite3_bind_null(statement, index)
            return
        }
        value.withUTF8 { bytes in
            if let base = bytes.baseAddress {
                base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    _ = sqlite3_bind_text(statement, index, $0, Int32(bytes.count), Self.transient)
                }
            } else {
                // An empty string has no buffer; bound as NULL it would change the record.
                _ = sqlite3_bind_text(statement, index, "", 0, Self.transient)
            }
        }
    }

    mutating func integer(_ value: Int64?) {
        defer { index += 1 }
        if let value {
            sqlite3_bind_int64(statement, index, value)
        } else {
            sqlite3_bind_null(statement, index)
        }
    }
}
