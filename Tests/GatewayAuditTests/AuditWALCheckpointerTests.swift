import Foundation
import GRDB
import Logging
import Testing

@testable import GatewayAudit

/// The audit store's log is copied into the database by a connection of its own, never by the writer's commits.
@Suite struct AuditWALCheckpointerTests {
    /// A frame of the log: a 4 KiB page and its 24-byte header.
    private static let frameBytes = 4_096 + 24

    /// Commits `transactions` transactions of about two pages each on `database`, back to back, each in the
    /// writer's turn as the backend's batches are.
    private static func write(_ database: DatabaseQueue, transactions: Int, turn checkpointer: AuditWALCheckpointer? = nil) throws {
        try database.write { db in try db.execute(sql: "CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, data BLOB)") }
        let data = Data(repeating: 0xA5, count: 6_000)
        for _ in 0..<transactions {
            let commit = { try database.write { db in try db.execute(sql: "INSERT INTO filler (data) VALUES (?)", arguments: [data]) } }
            if let checkpointer { try checkpointer.commitTurn(commit) } else { try commit() }
        }
    }

    private static func walBytes(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
    }

    @Test func theCheckpointerCopiesTheLogAndStartsItOverSoItStaysBounded() throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        let database = try AuditDatabase.openForWriting(path: path, durability: .commit, lockTimeout: 5)
        let checkpointer = try AuditWALCheckpointer(path: path, logger: Logger(label: "test"), passiveFrames: 100, restartFrames: 400)
        database.writeWithoutTransaction { db in checkpointer.watch(db.sqliteConnection!) }
        // Paced as a gateway's batches are, not faster than a checkpoint on a slow disk can follow: the log's
        // high-water mark is then the restart threshold plus what came while a checkpoint ran.
        for _ in 0..<18 {
            try Self.write(database, transactions: 50, turn: checkpointer)
            checkpointer.settle()
        }
        let counts = checkpointer.counts
        #expect(counts.passive >= 2)
        // Each copy is followed by a sync of the database file outside the writer's turn (counted once it succeeded).
        #expect(counts.syncs == counts.passive)
        #expect(counts.lastError == nil)
        // About 2,700 frames were written; started over at 400 (plus what came during a checkpoint), the log
        // never held more than a fraction of them. The file keeps its high-water mark when the log starts over.
        let wal = try Self.walBytes(path)
        #expect(wal < 1_200 * Self.frameBytes, "log of \(wal) bytes")
        // Once the log reached the restart threshold, the checkpointer started it over. On a busy machine the
        // checkpointer may instead copy each round whole before the next one begins, and SQLite then starts the log
        // over by itself at the next commit: the log never reaches the threshold and no restart is needed.
        if wal >= 400 * Self.frameBytes { #expect(counts.restarts >= 1, "log of \(wal) bytes") }
        database.writeWithoutTransaction { db in AuditWALCheckpointer.unwatch(db.sqliteConnection!) }
        try database.close()
        checkpointer.close()
        // Everything committed is in the database, whoever copied it.
        let reader = try DatabaseQueue(path: path)
        #expect(try reader.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM filler") } == 900)
    }

    /// An `audit export` reading while the gateway writes: the restart cannot happen until it is done, and waiting
    /// for it must not hold the writer's commits past their own lock timeout.
    @Test func aLongReaderPutsRestartsOffWithoutBlockingTheWriter() throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        let database = try AuditDatabase.openForWriting(path: path, durability: .commit, lockTimeout: 0.5)
        try Self.write(database, transactions: 1)
        let checkpointer = try AuditWALCheckpointer(path: path, logger: Logger(label: "test"), restartWait: 0.05, passiveFrames: 100, restartFrames: 400)
        database.writeWithoutTransaction { db in checkpointer.watch(db.sqliteConnection!) }
        let reader = try AuditDatabase.openForReading(path: path)
        let reading = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM filler")
                reading.signal()
                done.wait()
            }
            finished.signal()
        }
        reading.wait()
        // Every commit succeeds within the writer's 0.5 s lock timeout although each restart waits for the reader.
        try Self.write(database, transactions: 900, turn: checkpointer)
        checkpointer.settle()
        #expect(checkpointer.counts.deferred >= 1)
        #expect(checkpointer.counts.restarts == 0)
        done.signal()
        finished.wait()
        // With the reader gone, the next checkpoint starts the log over.
        try Self.write(database, transactions: 100, turn: checkpointer)
        checkpointer.settle()
        #expect(checkpointer.counts.restarts >= 1)
        database.writeWithoutTransaction { db in AuditWALCheckpointer.unwatch(db.sqliteConnection!) }
        try database.close()
        checkpointer.close()
        try reader.close()
    }

    @Test func theWritersOwnCommitsNoLongerCheckpoint() throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        let database = try AuditDatabase.openForWriting(path: path, durability: .commit, lockTimeout: 5)
        // A checkpointer that is never asked: what the log does is then the writer's connection's alone.
        let checkpointer = try AuditWALCheckpointer(path: path, logger: Logger(label: "test"), passiveFrames: .max, restartFrames: .max)
        database.writeWithoutTransaction { db in checkpointer.watch(db.sqliteConnection!) }
        try Self.write(database, transactions: 700)
        // SQLite's automatic checkpoint would have started the log over at 1,000 frames.
        let wal = try Self.walBytes(path)
        #expect(wal > 1_500 * Self.frameBytes, "log of \(wal) bytes")
        #expect(checkpointer.counts.passive == 0)
        database.writeWithoutTransaction { db in AuditWALCheckpointer.unwatch(db.sqliteConnection!) }
        try database.close()
        checkpointer.close()
    }
}
