import Foundation
import GRDB
import GRDBSQLite
import Logging

/// The embedded audit store: one SQLite file per gateway, one chain in it.
final class AuditSQLiteBackend: AuditBackend {
    private let path: String
    private let durability: AuditDurability
    private let lockTimeout: TimeInterval
    private let logger: Logger
    private(set) var database: DatabaseQueue?
    /// Checkpoints the log off the writer's thread (see `AuditWALCheckpointer`).
    private(set) var checkpointer: AuditWALCheckpointer?
    /// The records after the last time mark, as committed.
    private var openRun = AuditTimeMarks.OpenRun()

    init(path: String, durability: AuditDurability, lockTimeout: TimeInterval, logger: Logger) {
        self.path = path
        self.durability = durability
        self.lockTimeout = lockTimeout
        self.logger = logger
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
        openRun = try opened.write { db in
            // Marks past the head cover records someone deleted: the writer's next records would fall inside them
            // with times they do not hold, and its next mark would collide with one of them.
            try db.execute(sql: "DELETE FROM audit_time_marks WHERE last_seq > ?", arguments: [head.lastSeq])
            return try AuditTimeMarks.OpenRun.read(db)
        }
        let checkpointer = try AuditWALCheckpointer(path: path, logger: logger)
        opened.writeWithoutTransaction { db in
            if let connection = db.sqliteConnection { checkpointer.watch(connection) }
        }
        database = opened
        self.checkpointer = checkpointer
        return head
    }

    func append(_ segments: [AuditPackedRecords], links: AuditChainLinks, checkpoint: AuditCheckpoint?) throws {
        guard let database, let checkpointer else { throw AuditError.unavailable("audit store not open") }
        try checkpointer.commitTurn { try append(segments, links: links, checkpoint: checkpoint, to: database) }
    }

    private func append(_ segments: [AuditPackedRecords], links: AuditChainLinks, checkpoint: AuditCheckpoint?, to database: DatabaseQueue) throws {
        // Kept only once the batch is committed, so a failed batch leaves the run as the store has it.
        var run = openRun
        var marks: [[Int64]] = []
        try database.writeWithoutTransaction { db in
            // The transaction's statements are prepared once for the connection: `inTransaction` would parse
            // `BEGIN` and `COMMIT` again for every batch.
            try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
            do {
                // Prepared statements for the life of the connection, their values bound straight from the packed
                // records and the links, without SQLite copying them (`SQLITE_STATIC`: they outlive the step);
                // GRDB's StatementArguments would box 36 DatabaseValues per record first. The batch's rows, across
                // its loops' segments, go to INSERTs of 16, 8, 4, 2 or 1 rows, largest first: SQLite opens its
                // cursors and ends a statement once per INSERT, which costs about as much as a row (a batch of 9 is
                // two statements, where one per row was nine).
                var bound: [OpaquePointer] = []
                // Cleared so that no statement keeps pointers into buffers freed after the batch; only those that
                // were bound, since clearing visits every parameter (592 in the 16-row statement).
                defer { for statement in bound { sqlite3_clear_bindings(statement) } }
                try links.withReader { hashes in
                    // The rows' readers keep the packed bytes alive until the last INSERT has run.
                    var rows = AuditPackedRecords.Rows(segments)
                    var row = 0
                    while rows.remaining > 0 {
                        let size = Self.rowsPerStatement.first { $0 <= rows.remaining }!
                        let sql = Self.insertSQL(rows: size)
                        let statement = try db.cachedStatement(sql: sql).sqliteStatement
                        if !bound.contains(statement) { bound.append(statement) }
                        for offset in 0..<size {
                            var binder = SQLiteBinder(statement: statement, firstIndex: Int32(offset * Self.columns + 1))
                            let seq = links.firstSeq + Int64(row)
                            binder.integer(seq)
                            rows.visitNext(&binder)
                            run.add(seq: seq, timeMicros: binder.timeMicros)
                            if let mark = run.takeMark() { marks.append(mark) }
                            binder.text(hashes.previousHash(row))
                            binder.text(hashes.hash(row))
                            binder.integer(AuditChainLinker.version)
                            row += 1
                        }
                        try Self.step(statement, on: db.sqliteConnection, sql: sql)
                    }
                }
                for mark in marks { try db.cachedStatement(sql: AuditTimeMarks.insertSQL).execute(arguments: StatementArguments(mark)) }
                if let checkpoint { try db.execute(sql: AuditCheckpoint.insertSQL, arguments: checkpoint.insertArguments) }
                try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
            } catch {
                // A full disk or an I/O error may have rolled back already; then this one fails, harmlessly.
                try? db.rollback()
                throw error
            }
        }
        openRun = run
    }

    /// Parameters per row: the chained fields, `prev_hash`, `hash` and `canonical_version`.
    private static let columns = AuditEntry.fieldNames.count + AuditEntry.chainColumns.count
    /// The INSERTs' sizes in rows, largest first.
    private static let rowsPerStatement = [16, 8, 4, 2, 1]
    private static let insertSQLs: [String] = rowsPerStatement.map { rows in
        let marks = "(" + Array(repeating: "?", count: columns).joined(separator: ",") + ")"
        return AuditEntry.insertSQL + String(repeating: "," + marks, count: rows - 1)
    }

    /// `AuditEntry.insertSQL` with `rows` rows of parameters (one of `rowsPerStatement`).
    private static func insertSQL(rows: Int) -> String { insertSQLs[rowsPerStatement.firstIndex(of: rows)!] }

    /// Inserts the bound rows; throws when they were not inserted.
    private static func step(_ statement: OpaquePointer, on connection: OpaquePointer?, sql: String) throws {
        let code = sqlite3_step(statement)
        // The message is read before the reset, which may replace it.
        let failure = code == SQLITE_DONE ? nil : DatabaseError(
            resultCode: ResultCode(rawValue: code), message: connection.map { String(cString: sqlite3_errmsg($0)) },
            sql: sql)
        sqlite3_reset(statement)
        if let failure { throw failure }
    }

    var closesAfterFailure: Bool { false }

    func close() {
        database?.writeWithoutTransaction { db in
            if let connection = db.sqliteConnection { AuditWALCheckpointer.unwatch(connection) }
        }
        try? database?.close()
        database = nil
        checkpointer?.close()
        checkpointer = nil
    }
}

/// Binds one row's values to consecutive parameters from `firstIndex`, in `AuditEntry.insertSQL` order.
private struct SQLiteBinder: AuditPackedFieldVisitor {
    let statement: OpaquePointer
    private var index: Int32
    /// Where `time_us` is bound: after `seq` and `node_id`.
    private let timeIndex: Int32
    /// The row's `time_us`, once bound (for the time marks).
    private(set) var timeMicros: Int64 = 0

    init(statement: OpaquePointer, firstIndex: Int32) {
        self.statement = statement
        index = firstIndex
        timeIndex = firstIndex + 2
    }

    mutating func text(_ bytes: UnsafeBufferPointer<UInt8>) {
        // An empty text still needs an address, or SQLite would store NULL.
        let address = UnsafeRawPointer(bytes.baseAddress ?? Self.empty.utf8Start)
        sqlite3_bind_text(statement, index, address.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil)
        index += 1
    }

    mutating func integer(_ value: Int64) {
        if index == timeIndex { timeMicros = value }
        sqlite3_bind_int64(statement, index, value)
        index += 1
    }

    mutating func null() {
        sqlite3_bind_null(statement, index)
        index += 1
    }

    private static let empty: StaticString = ""
}
