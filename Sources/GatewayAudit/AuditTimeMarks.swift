import GRDB

/// Where each time lies in a SQLite chain: one row per run of `span` records, holding the run's first and
/// last sequence numbers and its lowest and highest `time_us`.
///
/// It stands in for an index on `time_us`, which put one more page into the log at every commit and cost the writer
/// about 7% of its CPU per record (docs/performance.md, the audit trail's eleventh round). A mark is written
/// once per run, in the transaction of the batch that completes it. The marks cover the chain from its first record
/// without gaps, and only the records after the last mark are not covered yet. A time filter reads the runs whose
/// times overlap it and those records, and compares `time_us` exactly in them. So a clock that stepped back
/// widens what is read, never what is found.
enum AuditTimeMarks {
    /// Records per mark: unless the clock stepped back, a filter reads at most this many records outside its window
    /// at each end.
    static let span: Int64 = 4_096

    /// The table, and the marks for the records already in the store (run once, by the migration): one per
    /// `span` of sequence numbers, but for the run holding the newest record, which the writer goes on filling.
    static let migrationSQL = """
        CREATE TABLE audit_time_marks (
            first_seq INTEGER PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            min_time_us INTEGER NOT NULL,
            max_time_us INTEGER NOT NULL
        );
        INSERT INTO audit_time_marks
            SELECT MIN(seq), MAX(seq), MIN(time_us), MAX(time_us) FROM audit_records GROUP BY (seq - 1) / \(span)
            HAVING MAX(seq) < (SELECT MAX(seq) FROM audit_records);
        DROP INDEX IF EXISTS audit_records_time;
        """

    static let insertSQL = "INSERT INTO audit_time_marks (first_seq, last_seq, min_time_us, max_time_us) VALUES (?, ?, ?, ?)"

    /// A condition on `seq` that keeps every record with `since <= time_us < until`, and its arguments; nil when
    /// there is no time bound, or no marks table (a store no writer of this version has opened), so that only the
    /// exact comparison of `time_us` decides.
    static func seqCondition(_ db: Database, since: Int64?, until: Int64?) throws -> (sql: String, arguments: [Int64])? {
        guard since != nil || until != nil, try db.tableExists("audit_time_marks") else { return nil }
        let lastMarked = try lastMarkedSeq(db)
        var overlap: [String] = []
        var bounds: [Int64] = []
        if let since {
            overlap.append("max_time_us >= ?")
            bounds.append(since)
        }
        if let until {
            overlap.append("min_time_us < ?")
            bounds.append(until)
        }
        let overlapping = try Row.fetchOne(
            db, sql: "SELECT MIN(first_seq), MAX(last_seq) FROM audit_time_marks WHERE " + overlap.joined(separator: " AND "),
            arguments: StatementArguments(bounds))
        // One span from the first overlapping run to the last: runs between them are read too, which only a clock
        // that went back makes many. Then the records after the last mark. Both are read as one range of the table
        // from the span's start, in order, the rows between the span and the last mark passed over by `seq` alone:
        // SQLite plans two ranges ORed under an `ORDER BY seq` as a scan of the whole table, and as two ranges only
        // with a sort of every matching row, which a page of 50 records would pay in full.
        guard let low = overlapping?[0] as Int64?, let high = overlapping?[1] as Int64? else { return ("seq > ?", [lastMarked]) }
        if high >= lastMarked { return ("seq >= ?", [low]) }
        return ("seq >= ? AND (seq <= ? OR seq > ?)", [low, high, lastMarked])
    }

    /// The last sequence number a mark covers; 0 when there is no mark.
    static func lastMarkedSeq(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT MAX(last_seq) FROM audit_time_marks") ?? 0
    }

    /// The run the writer is filling: the records after the last mark.
    struct OpenRun {
        private(set) var firstSeq: Int64 = 0
        private(set) var lastSeq: Int64 = 0
        private(set) var minTime: Int64 = .max
        private(set) var maxTime: Int64 = .min

        /// The run as the store holds it: the records after the last mark, read when the writer opens it.
        static func read(_ db: Database) throws -> OpenRun {
            let lastMarked = try lastMarkedSeq(db)
            var run = OpenRun()
            if let row = try Row.fetchOne(
                db, sql: "SELECT MIN(seq), MAX(seq), MIN(time_us), MAX(time_us) FROM audit_records WHERE seq > ?", arguments: [lastMarked]),
                let first = row[0] as Int64?
            {
                run = OpenRun(firstSeq: first, lastSeq: row[1], minTime: row[2], maxTime: row[3])
            }
            return run
        }

        /// Takes in the next record of the chain.
        mutating func add(seq: Int64, timeMicros: Int64) {
            if firstSeq == 0 { firstSeq = seq }
            lastSeq = seq
            minTime = min(minTime, timeMicros)
            maxTime = max(maxTime, timeMicros)
        }

        /// The mark to write once the run is `span` records long; the run then starts again after it.
        mutating func takeMark() -> [Int64]? {
            guard firstSeq > 0, lastSeq - firstSeq + 1 >= span else { return nil }
            defer { self = OpenRun() }
            return [firstSeq, lastSeq, minTime, maxTime]
        }
    }
}
