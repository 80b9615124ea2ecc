import Foundation
import GRDB
import Testing

@testable import GatewayAudit

/// The time marks that stand in for an index on `time_us`: a time filter must find exactly what a scan of every
/// record finds, across writer restarts, clocks that stepped back, a failed batch, a prune, records deleted from
/// the end and a store from before the marks.
@Suite struct AuditTimeMarksTests {
    static let start: Int64 = 1_790_000_000_000_000
    static let count = 10_000

    /// A second apart, except two stretches written after the clock stepped back an hour: records 5,000 to 5,999
    /// (inside a run) and 7,900 to 8,499 (across the end of the second run, so its newest record is not its latest).
    static func time(_ index: Int) -> Int64 {
        let stepped = (5_000..<6_000).contains(index) || (7_900..<8_500).contains(index)
        return start + Int64(index) * 1_000_000 - (stepped ? 3_600_000_000 : 0)
    }

    /// Writes `indices` 128 records at a time, so the writer batches them as it would under load and a run ends
    /// inside a batch; returns the indices whose records were written (all, unless the store refused a batch).
    @discardableResult
    static func write(_ writer: AuditWriter, _ indices: Range<Int>, allowingFailures: Bool = false) async throws -> Set<Int> {
        var written = Set<Int>()
        for chunk in stride(from: indices.lowerBound, to: indices.upperBound, by: 128) {
            let batch = chunk..<min(chunk + 128, indices.upperBound)
            let futures = batch.map { writer.record(Fixtures.record($0, timeMicros: time($0)), on: Fixtures.loop) }
            for (index, future) in zip(batch, futures) {
                do {
                    try await future.get()
                    written.insert(index)
                } catch where allowingFailures {}
            }
        }
        return written
    }

    /// Windows `[since, until)` in seconds after `start`: inside the stepped-back hours, around them, across the
    /// last mark and the records after it, open-ended, empty.
    static let windows: [(Int64?, Int64?)] = {
        let seconds: [(Int64?, Int64?)] = [
            (1_500, 1_600), (1_399, 2_401), (4_990, 5_010), (7_000, 7_100), (0, 1), (nil, 300), (8_000, 9_000),
            (8_000, nil), (9_000, nil), (20_000, nil), (nil, nil), (7_000, 7_000),
        ]
        return seconds.map { (since: Int64?, until: Int64?) -> (Int64?, Int64?) in
            (since.map { start + $0 * 1_000_000 }, until.map { start + $0 * 1_000_000 })
        }
    }()

    /// Windows at the marks' own bounds, where `>=` against `>` or `<` against `<=` would matter.
    static func boundaryWindows(_ marks: [Row]) -> [(Int64?, Int64?)] {
        marks.flatMap { mark -> [(Int64?, Int64?)] in
            let low: Int64 = mark["min_time_us"]
            let high: Int64 = mark["max_time_us"]
            return [(high, nil), (high + 1, nil), (nil, low), (nil, low + 1), (high, high + 1), (low, low + 1)]
        }
    }

    /// Checks each window against the records written and against an exact scan of the store, and that a window's
    /// records are read by ranges of `seq`, not by a scan of the table.
    static func expectExact(_ path: String, _ windows: [(Int64?, Int64?)], written: Set<Int>) throws {
        let database = try DatabaseQueue(path: path)
        defer { try? database.close() }
        let marked = try database.read { try $0.tableExists("audit_time_marks") }
        for (since, until) in windows {
            let label = "window \(String(describing: since))..<\(String(describing: until))"
            let filter = AuditFilter(sinceMicros: since, untilMicros: until)
            let stats = try AuditReader.stats(path: path, filter: filter)
            let (scanned, plan, clause) = try database.read { db in
                let scanned = try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM audit_records WHERE phase != 'intent' AND time_us >= ? AND time_us < ?",
                    arguments: [since ?? .min, until ?? .max])!
                let (clause, arguments) = try filter.whereClause(db)
                // The plan's `detail` column (its first columns are the steps' ids).
                let plan = try Row.fetchAll(
                    db, sql: "EXPLAIN QUERY PLAN SELECT seq FROM audit_records\(clause) ORDER BY seq", arguments: arguments
                ).map { $0["detail"] as String }
                return (scanned, plan, clause)
            }
            let expected = written.filter { index in
                since.map { time(index) >= $0 } ?? true && until.map { time(index) < $0 } ?? true
            }.count
            #expect(stats.calls == scanned, "\(label)")
            #expect(stats.calls == expected, "\(label)")
            if marked, since != nil || until != nil {
                #expect(!plan.contains { $0.hasPrefix("SCAN") }, "\(label): \(clause) \(plan)")
                #expect(plan.contains { $0.hasPrefix("SEARCH audit_records USING INTEGER PRIMARY KEY") }, "\(label): \(clause) \(plan)")
            }
        }
    }

    /// The marks run from the chain's first record without gaps, each `span` records long, and every record they
    /// cover lies within its mark's times.
    @discardableResult
    static func expectMarksCover(_ path: String) throws -> [Row] {
        let database = try DatabaseQueue(path: path)
        defer { try? database.close() }
        return try database.read { db in
            let marks = try Row.fetchAll(db, sql: "SELECT first_seq, last_seq, min_time_us, max_time_us FROM audit_time_marks ORDER BY first_seq")
            let firstSeq = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit_records")
            if let first = marks.first { #expect((first["first_seq"] as Int64) <= firstSeq ?? .max) }
            for (earlier, later) in zip(marks, marks.dropFirst()) {
                #expect((later["first_seq"] as Int64) == (earlier["last_seq"] as Int64) + 1)
            }
            for mark in marks { #expect((mark["last_seq"] as Int64) - (mark["first_seq"] as Int64) + 1 == AuditTimeMarks.span) }
            let outside = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM audit_records r
                WHERE r.seq <= (SELECT COALESCE(MAX(last_seq), 0) FROM audit_time_marks) AND NOT EXISTS (
                    SELECT 1 FROM audit_time_marks m
                    WHERE r.seq BETWEEN m.first_seq AND m.last_seq AND r.time_us BETWEEN m.min_time_us AND m.max_time_us)
                """)
            #expect(outside == 0)
            #expect(try !db.indexes(on: "audit_records").contains { $0.name == "audit_records_time" })
            return marks
        }
    }

    /// A store holding records 0 to `count - 1`, its writer shut down.
    static func writtenStore() async throws -> (dir: TempDir, path: String) {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await write(writer, 0..<count)
        await writer.shutdown()
        return (dir, dir.path("audit.sqlite"))
    }

    /// The request ids of the records in the store, as record indices.
    static func indices(in path: String) throws -> Set<Int> {
        let database = try DatabaseQueue(path: path)
        defer { try? database.close() }
        let ids = try database.read { db in try String.fetchAll(db, sql: "SELECT request_id FROM audit_records") }
        return Set(ids.map { Int($0.dropFirst("req-".count))! })
    }

    @Test func timeFiltersFindWhatAScanFindsAcrossRestartsAndClockSteps() async throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        // Two writers one after the other: the second resumes the run the first left open.
        let first = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await Self.write(first, 0..<4_500)
        await first.shutdown()
        let second = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await Self.write(second, 4_500..<Self.count)
        await second.shutdown()

        let marks = try Self.expectMarksCover(path)
        #expect(marks.count == 2)
        let all = Set(0..<Self.count)
        try Self.expectExact(path, Self.windows + Self.boundaryWindows(marks), written: all)
        #expect(try AuditVerifier.verify(path: path, publicKeys: Fixtures.trustedKeys).isIntact)

        // A prune drops the marks behind its cut; what stays is still found exactly.
        let result = try AuditPruner.prune(path: path, beforeMicros: Self.start + 4_700_000_000, archive: dir.path("archive.jsonl"))
        let cut = try #require(result.anchor?.seq)
        #expect(cut >= 4_000)
        let left = try Self.expectMarksCover(path)
        #expect(left.allSatisfy { ($0["last_seq"] as Int64) > cut })
        try Self.expectExact(path, Self.windows + Self.boundaryWindows(left), written: try Self.indices(in: path))
    }

    @Test func aBatchThatFailsLeavesTheRunAsTheStoreHasIt() async throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        let writer = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await Self.write(writer, 0..<4_000)
        // The batch that completes the first run fails at its mark, and is rolled back with it.
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "CREATE TRIGGER refuse_mark BEFORE INSERT ON audit_time_marks BEGIN SELECT RAISE(ABORT, 'refused'); END")
        }
        let refused = try await Self.write(writer, 4_000..<4_200, allowingFailures: true)
        #expect(refused.count < 200)
        try Fixtures.tamper(path) { db in try db.execute(sql: "DROP TRIGGER refuse_mark") }
        let rest = try await Self.write(writer, 4_200..<Self.count)
        await writer.shutdown()

        try Self.expectMarksCover(path)
        let written = Set(0..<4_000).union(refused).union(rest)
        #expect(try Self.indices(in: path) == written)
        try Self.expectExact(path, Self.windows, written: written)
    }

    @Test func marksPastRecordsDeletedFromTheEndAreDroppedByTheNextWriter() async throws {
        let (dir, path) = try await Self.writtenStore()
        // Inside the second run, so its mark reaches past the new end of the chain.
        try Fixtures.tamper(path) { db in try db.execute(sql: "DELETE FROM audit_records WHERE seq > 8000") }

        let reopened = Fixtures.writer(dir, checkpointEvery: 1_000)
        // Every record accepted: a mark made again for the second run does not collide with the old one.
        try await Self.write(reopened, 20_000..<24_000)
        await reopened.shutdown()
        try Self.expectMarksCover(path)
        try Self.expectExact(path, Self.windows + [(Self.start + 19_000_000_000, nil)], written: try Self.indices(in: path))
    }

    @Test func aStoreFromBeforeTheMarksIsReadExactlyAndMarkedWhenAWriterOpensIt() async throws {
        let (dir, path) = try await Self.writtenStore()
        // Back to the schema before the marks: the time index, no marks, the migration not applied.
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "DROP TABLE audit_time_marks")
            try db.execute(sql: "CREATE INDEX audit_records_time ON audit_records(time_us)")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'time-marks'")
        }
        try Self.expectExact(path, Self.windows, written: Set(0..<Self.count))

        let reopened = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await Self.write(reopened, Self.count..<(Self.count + 10))
        await reopened.shutdown()
        let marks = try Self.expectMarksCover(path)
        // The migration marks the first two runs of 4,096; the writer goes on with the third.
        #expect(marks.count == 2)
        try Self.expectExact(path, Self.windows + Self.boundaryWindows(marks), written: Set(0..<(Self.count + 10)))
        #expect(try AuditVerifier.verify(path: path, publicKeys: Fixtures.trustedKeys).isIntact)
    }
}
