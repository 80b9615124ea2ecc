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
                var row = SQLiteRow(statement: statement)
                defer { sqlite3_clear_bindings(statement) }
                for segment in segments {
                    // Entries are read in place: copying one out would retain and release its 30-odd strings.
                    for index in segment.indices {
                        row.start()
                        row.integer(segment[index].seq)
                        segment[index].visitFieldsAfterSeq(&row)
                        row.text(segment[index].prevHash)
                        row.text(segment[index].hash)
                        if let failure = row.step(on: db.sqliteConnection) { throw failure }
                    }
                }
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

/// One row's columns in `AuditEntry.insertSQL` order, bound to a prepared statement: integers at once, texts
/// gathered into one reused buffer and bound without a copy (`SQLITE_STATIC`) just before the row is stepped;
/// `SQLITE_TRANSIENT` would make SQLite allocate and copy every text value of every row first.
private struct SQLiteRow: AuditFieldVisitor {
    let statement: OpaquePointer
    private var index: Int32 = 1
    private var bytes: [UInt8] = []
    private var texts: [(index: Int32, start: Int, count: Int)] = []

    init(statement: OpaquePointer) {
        self.statement = statement
        bytes.reserveCapacity(2048)
        texts.reserveCapacity(AuditEntry.fieldNames.count + 2)
    }

    /// Begins the next row; the buffer keeps its capacity.
    mutating func start() {
        index = 1
        // Never empty, so its storage always has an address, which an empty text value is bound to.
        bytes.removeAll(keepingCapacity: true)
        bytes.append(0)
        texts.removeAll(keepingCapacity: true)
    }

    mutating func text(_ value: String?) {
        defer { index += 1 }
        guard let value else {
            sqlite3_bind_null(statement, index)
            return
        }
        let start = bytes.count
        // Read in place (a mutable copy for `withUTF8` would retain the string); a bridged string is copied.
        if value.utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
            bytes.append(contentsOf: value.utf8)
        }
        texts.append((index, start, bytes.count - start))
    }

    mutating func integer(_ value: Int64?) {
        defer { index += 1 }
        if let value {
            sqlite3_bind_int64(statement, index, value)
        } else {
            sqlite3_bind_null(statement, index)
        }
    }

    /// Binds the texts and inserts the row; the buffer is not touched until every text is bound again. Returns
    /// the error when the row was not inserted.
    func step(on connection: OpaquePointer?) -> DatabaseError? {
        bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { base in
                for text in texts {
                    sqlite3_bind_text(statement, text.index, base + text.start, Int32(text.count), Self.static)
                }
                let code = sqlite3_step(statement)
                // The message is read before the reset, which may replace it.
                let failure = code == SQLITE_DONE ? nil : DatabaseError(
                    resultCode: ResultCode(rawValue: code), message: connection.map { String(cString: sqlite3_errmsg($0)) },
                    sql: AuditEntry.insertSQL)
                sqlite3_reset(statement)
                return failure
            }
        }
    }

    /// Tells SQLite the bytes stay valid (and unchanged) until they are bound again or cleared.
    private static var `static`: sqlite3_destructor_type? { nil }
}
