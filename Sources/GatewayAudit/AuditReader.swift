import Foundation
import GRDB
import GatewayPostgres

/// Which records an export or stats run covers; every bound is optional.
public struct AuditFilter: Sendable {
    /// Inclusive lower bound on `time_us`.
    public var sinceMicros: Int64?
    /// Exclusive upper bound on `time_us`.
    public var untilMicros: Int64?
    /// Only this merchant.
    public var merchantID: String?
    /// Only this caller.
    public var callerID: String?
    /// Only the records of this request.
    public var requestID: String?
    /// Only records with this gateway error code.
    public var gatewayErrorCode: String?

    /// Makes a filter.
    public init(
        sinceMicros: Int64? = nil, untilMicros: Int64? = nil, merchantID: String? = nil, callerID: String? = nil, requestID: String? = nil,
        gatewayErrorCode: String? = nil
    ) {
        self.sinceMicros = sinceMicros
        self.untilMicros = untilMicros
        self.merchantID = merchantID
        self.callerID = callerID
        self.requestID = requestID
        self.gatewayErrorCode = gatewayErrorCode
    }

    /// The SQLite store's `WHERE` clause for the filter (empty when nothing is filtered), and its arguments.
    func whereClause(_ db: Database) throws -> (sql: String, arguments: StatementArguments) {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let span = try AuditTimeMarks.seqCondition(db, since: sinceMicros, until: untilMicros) {
            conditions.append(span.sql)
            arguments.append(contentsOf: span.arguments)
        }
        if let sinceMicros { conditions.append("time_us >= ?"); arguments.append(sinceMicros) }
        if let untilMicros { conditions.append("time_us < ?"); arguments.append(untilMicros) }
        if let merchantID { conditions.append("merchant_id = ?"); arguments.append(merchantID) }
        if let callerID { conditions.append("caller_id = ?"); arguments.append(callerID) }
        if let requestID { conditions.append("request_id = ?"); arguments.append(requestID) }
        if let gatewayErrorCode { conditions.append("gateway_error_code = ?"); arguments.append(gatewayErrorCode) }
        let sql = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return (sql, StatementArguments(arguments))
    }
}

/// Call counts over a window.
public struct AuditStats: Sendable, Equatable {
    /// Calls (outcome and refusal records; intents are not counted twice) in the window.
    public var calls = 0
    /// Calls per merchant (`-` when none was resolved), most first.
    public var byMerchant: [(String, Int)] = []
    /// Calls per caller (`-` when unauthenticated), most first.
    public var byCaller: [(String, Int)] = []
    /// Calls per HTTP status returned (`-` when none), most first.
    public var byStatus: [(String, Int)] = []

    /// Compares the counts.
    public static func == (lhs: AuditStats, rhs: AuditStats) -> Bool {
        lhs.calls == rhs.calls && lhs.byMerchant.elementsEqual(rhs.byMerchant, by: ==)
            && lhs.byCaller.elementsEqual(rhs.byCaller, by: ==) && lhs.byStatus.elementsEqual(rhs.byStatus, by: ==)
    }
}

/// Read side of the trail: export, tail and stats, all with cursors so memory does not grow with the store.
public enum AuditReader {
    /// Streams matching records in sequence order (in PostgreSQL: every node's chain, merged by time) to `output`;
    /// returns how many were written.
    @discardableResult
    public static func export(path: String, filter: AuditFilter, format: AuditExportFormat, to output: AuditOutput) throws -> Int {
        if PostgresURL.isPostgresURL(path) { return try AuditPostgresReader.export(url: path, filter: filter, format: format, to: output) }
        let database = try AuditDatabase.openForReading(path: path)
        defer { try? database.close() }
        var count = 0
        if let header = format.header { try output.write(header) }
        try database.read { db in
            let (clause, arguments) = try filter.whereClause(db)
            let rows = try Row.fetchCursor(db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records\(clause) ORDER BY seq", arguments: arguments)
            while let row = try rows.next() {
                try output.write(format.line(for: AuditEntry(row: row)))
                count += 1
            }
        }
        try output.flush()
        return count
    }

    /// Writes the last `count` records, then (with `follow`) polls for new ones until the task is cancelled.
    public static func tail(path: String, count: Int, follow: Bool, format: AuditExportFormat = .jsonl, to output: AuditOutput) async throws {
        if PostgresURL.isPostgresURL(path) {
            return try await AuditPostgresReader.tail(url: path, count: count, follow: follow, format: format, to: output)
        }
        let database = try AuditDatabase.openForReading(path: path)
        defer { try? database.close() }
        if let header = format.header { try output.write(header) }
        let newest = try newestSeq(database)
        var lastSeq = try write(database, after: newest - Int64(max(0, count)), format: format, to: output) ?? newest
        while follow, !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(500))
            lastSeq = try write(database, after: lastSeq, format: format, to: output) ?? lastSeq
        }
    }

    private static func newestSeq(_ database: DatabaseQueue) throws -> Int64 {
        try database.read { try Int64.fetchOne($0, sql: "SELECT MAX(seq) FROM audit_records") ?? 0 }
    }

    /// Writes the records after `seq`; returns the last one written.
    private static func write(_ database: DatabaseQueue, after seq: Int64, format: AuditExportFormat, to output: AuditOutput) throws -> Int64? {
        var last: Int64?
        try database.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records WHERE seq > ? ORDER BY seq", arguments: [seq])
            while let row = try rows.next() {
                let entry = AuditEntry(row: row)
                try output.write(format.line(for: entry))
                last = entry.seq
            }
        }
        try output.flush()
        return last
    }

    /// Counts calls per merchant, caller and status in the window (SQLite aggregates; nothing is loaded row by row).
    public static func stats(path: String, filter: AuditFilter) throws -> AuditStats {
        if PostgresURL.isPostgresURL(path) { return try AuditPostgresReader.stats(url: path, filter: filter) }
        let database = try AuditDatabase.openForReading(path: path)
        defer { try? database.close() }
        return try database.read { db in
            var (clause, arguments) = try filter.whereClause(db)
            clause += clause.isEmpty ? " WHERE phase != 'intent'" : " AND phase != 'intent'"
            func grouped(_ column: String) throws -> [(String, Int)] {
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT COALESCE(CAST(\(column) AS TEXT), '-') AS k, COUNT(*) AS n FROM audit_records\(clause) GROUP BY k ORDER BY n DESC, k",
                    arguments: arguments)
                var result: [(String, Int)] = []
                while let row = try rows.next() { result.append((row["k"], row["n"])) }
                return result
            }
            var stats = AuditStats()
            stats.calls = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_records\(clause)", arguments: arguments) ?? 0
            stats.byMerchant = try grouped("merchant_id")
            stats.byCaller = try grouped("caller_id")
            stats.byStatus = try grouped("status")
            return stats
        }
    }
}
