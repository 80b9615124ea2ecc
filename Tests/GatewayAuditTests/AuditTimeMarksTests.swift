import Foundation
import GRDB
import Testing

@testable import GatewayAudit

/// The time marks that stand in for an index on `time_us`: a time filter must find exactly what a scan of every
/// record finds, across writer restarts, a clock that stepped back, a prune and a store from before the marks.
@Suite struct AuditTimeMarksTests {
    static let start: Int64 = 1_790_000_000_000_000
    static let count = 10_000

    /// A second apart, except records 5,000 to 5,999: written after the clock stepped back an hour, so their times
    /// fall among those of records 1,400 to 2,399.
    static func time(_ index: Int) -> Int64 {
        start + Int64(index) * 1_000_000 - ((5_000..<6_000).contains(index) ? 3_600_000_000 : 0)
    }

    /// 128 records at a time, so the writer batches them as it would under load and a run ends inside a batch.
    static func write(_ writer: AuditWriter, _ indices: Range<Int>) async throws {
        for chunk in stride(from: indices.lowerBound, to: indices.upperBound, by: 128) {
            let futures = (chunk..<min(chunk + 128, indices.upperBound)).map {
                writer.record(Fixtures.record($0, timeMicros: time($0)), on: Fixtures.loop)
            }
            for future in futures { try await future.get() }
        }
    }

    /// Windows `[since, until)` in seconds after `start`: inside the stepped-back hour, around it, across the last mark
    /// and the records after it, open-ended, empty.
    static let windows: [(Int64?, Int64?)] = [
        (1_500, 1_600), (1_399, 2_401), (4_990, 5_010), (0, 1), (nil, 300), (8_000, 9_000), (8_000, nil), (9_000, nil), (20_000, nil),
        (nil, nil), (7_000, 7_000),
    ]

    static func expected(_ since: Int64?, _ until: Int64?, among indices: Range<Int>) -> Int {
        indices.filter { index in
            let time = Self.time(index)
            return since.map { time >= start + $0 * 1_000_000 } ?? true && until.map { time < start + $0 * 1_000_000 } ?? true
        }.count
    }

    static func filter(_ since: Int64?, _ until: Int64?) -> AuditFilter {
        AuditFilter(sinceMicros: since.map { start + $0 * 1_000_000 }, untilMicros: until.map { start + $0 * 1_000_000 })
    }

    /// Checks every window against the expected count and against an exact scan of the store.
    static func expectWindowsExact(_ path: String, among indices: Range<Int>) throws {
        let database = try DatabaseQueue(path: path)
        defer { try? database.close() }
        for (since, until) in windows {
            let stats = try AuditReader.stats(path: path, filter: filter(since, until))
            let scanned = try database.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM audit_records WHERE time_us >= ? AND time_us < ?",
                    arguments: [since.map { start + $0 * 1_000_000 } ?? .min, until.map { start + $0 * 1_000_000 } ?? .max])!
            }
            #expect(stats.calls == scanned, "window \(String(describing: since))..<\(String(describing: until))")
            #expect(stats.calls == expected(since, until, among: indices), "window \(String(describing: since))..<\(String(describing: until))")
        }
    }

    /// The marks run from the chain's first record without gaps, each at least `span` long, and every record they
    /// cover lies within its mark's times.
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
            for mark in marks { #expect((mark["last_seq"] as Int64) - (mark["first_seq"] as Int64) + 1 >= AuditTimeMarks.span) }
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

    @Test func timeFiltersFindWhatAScanFindsAcrossRestartsAndAClockStep() async throws {
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
        try Self.expectWindowsExact(path, among: 0..<Self.count)
        #expect(try AuditVerifier.verify(path: path, publicKeys: Fixtures.trustedKeys).isIntact)

        // A prune drops the marks behind its cut; what stays is still found exactly.
        let result = try AuditPruner.prune(path: path, beforeMicros: Self.start + 4_700_000_000, archive: dir.path("archive.jsonl"))
        let cut = try #require(result.anchor?.seq)
        #expect(cut >= 4_000)
        let left = try Self.expectMarksCover(path)
        #expect(left.allSatisfy { ($0["last_seq"] as Int64) > cut })
        let database = try DatabaseQueue(path: path)
        let remaining = try await database.read { db in try String.fetchAll(db, sql: "SELECT request_id FROM audit_records") }
        try database.close()
        let indices = Set(remaining.map { Int($0.dropFirst("req-".count))! })
        for (since, until) in Self.windows {
            let stats = try AuditReader.stats(path: path, filter: Self.filter(since, until))
            let expected = indices.filter { index in
                let time = Self.time(index)
                return since.map { time >= Self.start + $0 * 1_000_000 } ?? true && until.map { time < Self.start + $0 * 1_000_000 } ?? true
            }.count
            #expect(stats.calls == expected)
        }
    }

    @Test func aStoreFromBeforeTheMarksIsReadExactlyAndMarkedWhenAWriterOpensIt() async throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        let writer = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await Self.write(writer, 0..<Self.count)
        await writer.shutdown()
        // Back to the schema before the marks: the time index, no marks, the migration not applied.
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "DROP TABLE audit_time_marks")
            try db.execute(sql: "CREATE INDEX audit_records_time ON audit_records(time_us)")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'time-marks'")
        }
        try Self.expectWindowsExact(path, among: 0..<Self.count)

        let reopened = Fixtures.writer(dir, checkpointEvery: 1_000)
        try await Self.write(reopened, Self.count..<(Self.count + 10))
        await reopened.shutdown()
        let marks = try Self.expectMarksCover(path)
        // The migration marks the first two runs of 4,096; the writer goes on with the third.
        #expect(marks.count == 2)
        try Self.expectWindowsExact(path, among: 0..<(Self.count + 10))
        #expect(try AuditVerifier.verify(path: path, publicKeys: Fixtures.trustedKeys).isIntact)
    }
}
