import Crypto
import Foundation
import GRDB
import GatewayPostgres
import Logging
import PostgresNIO

/// The read side of the trail in PostgreSQL: every node's chain verified, records of all chains merged by time.
///
/// Each command reads inside one repeatable-read, read-only transaction, so a verification or an export sees one
/// consistent state of every chain while gateways keep appending. Records are read in pages along an index
/// (never one whole table in memory), on the calling thread, which may block: the CLI's.
enum AuditPostgresReader {
    static let pageSize = 5_000
    static let logger = Logger(label: "klarna-gateway.audit-reader", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` on one connection in a read-only snapshot.
    static func reading<T>(_ urlText: String, _ body: (Reader) throws -> T) throws -> T {
        let url = try PostgresURL(urlText)
        let connection = try PostgresConnection.blockingConnect(url, id: 2, logger: logger)
        defer { try? connection.close().wait() }
        var reader = Reader(connection: connection)
        guard try reader.beginSnapshot() else { throw AuditError.io("\(url) holds no audit trail (no audit_records table)") }
        let result = try body(reader)
        try reader.run("COMMIT")
        return result
    }

    struct Reader {
        let connection: PostgresConnection
        /// The columns its queries select, chosen by `beginSnapshot()`.
        var columns = AuditEntry.selectColumns

        @discardableResult
        func run(_ query: PostgresQuery) throws -> [PostgresRow] {
            try connection.blockingQuery(query, logger: AuditPostgresReader.logger)
        }

        /// Begins the read-only snapshot every later read sees and chooses `columns` inside it; false when the
        /// database holds no trail.
        ///
        /// The columns are looked up after the snapshot's first statement, so a writer's migration in between shows
        /// the column and only records from before it. On a trail no writer of this version has migrated (which a
        /// reader may not change: a read-only role, a standby), every record is selected as `v1`, what records from
        /// before the column are.
        mutating func beginSnapshot() throws -> Bool {
            try run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            guard try run("SELECT to_regclass('audit_records') IS NOT NULL").first?.decode(Bool.self) ?? false else { return false }
            let stored = try run("""
                SELECT EXISTS (
                    SELECT 1 FROM pg_attribute
                    WHERE attrelid = to_regclass('audit_records') AND attname = 'canonical_version' AND NOT attisdropped)
                """).first?.decode(Bool.self) ?? false
            columns = stored ? AuditEntry.selectColumns : AuditEntry.selectColumns(version: "\(AuditCanonical.textVersion)::bigint")
            return true
        }

        /// Node ids with records, checkpoints or an anchor: a loose index scan, one probe per node.
        func nodes() throws -> [String] {
            let rows = try run("""
                WITH RECURSIVE n AS (
                    SELECT MIN(node_id) AS id FROM audit_records
                    UNION ALL SELECT (SELECT MIN(node_id) FROM audit_records WHERE node_id > n.id) FROM n WHERE n.id IS NOT NULL
                )
                SELECT id FROM n WHERE id IS NOT NULL
                UNION SELECT node_id FROM audit_checkpoints
                UNION SELECT node_id FROM audit_anchors
                """)
            return try rows.map { try $0.decode(String.self) }.sorted()
        }
    }

    /// A row as GRDB would present it, so that entries and checkpoints are read by the same code for both stores.
    static func row(_ row: PostgresRow) throws -> Row {
        var values: [String: (any DatabaseValueConvertible)?] = [:]
        for cell in row {
            guard cell.bytes != nil else {
                values[cell.columnName] = nil as String?
                continue
            }
            values[cell.columnName] = cell.dataType == .int8 ? try cell.decode(Int64.self) : try cell.decode(String.self)
        }
        return Row(values)
    }

    static func entries(_ rows: [PostgresRow]) throws -> [AuditEntry] {
        try rows.map { AuditEntry(namedRow: try row($0)) }
    }

    // MARK: - Verify

    /// Verifies every node's chain and checkpoints; `trusted` holds shipped checkpoints of any node.
    static func verify(
        url: String, trusted: [AuditCheckpoint], hasTrustedFile: Bool, publicKeys: [String: Curve25519.Signing.PublicKey]
    ) throws -> VerificationReport {
        try reading(url) { reader in
            let nodes = Set(try reader.nodes()).union(trusted.map(\.nodeID)).sorted()
            var combined = VerificationReport()
            if publicKeys.isEmpty { combined.notes.append(AuditVerifier.untrustedKeysNote) }
            for node in nodes {
                let anchor = try reader.run(
                    "SELECT node_id, seq, time_us, hash, key_id, public_key, signature FROM audit_anchors WHERE node_id = \(node)"
                ).first.map { AuditCheckpoint(row: try row($0)) }
                let stored = try reader.run(
                    "SELECT node_id, seq, time_us, hash, key_id, public_key, signature FROM audit_checkpoints WHERE node_id = \(node) ORDER BY seq"
                ).map { AuditCheckpoint(row: try row($0)) }
                var chain = AuditChainCheck(
                    anchor: anchor, stored: stored, trusted: trusted.filter { $0.nodeID == node }, publicKeys: publicKeys)
                var after = anchor?.seq ?? 0
                while true {
                    let page = try entries(reader.run(PostgresQuery(
                        unsafeSQL: "SELECT \(reader.columns) FROM audit_records WHERE node_id = $1 AND seq > $2 ORDER BY seq LIMIT \(pageSize)",
                        binds: binds(node, after))))
                    for entry in page { chain.check(entry) }
                    guard let last = page.last, page.count == pageSize else { break }
                    after = last.seq
                }
                combined.add(chain.finish(hasTrustedFile: hasTrustedFile), node: node)
            }
            if nodes.isEmpty { combined.notes.append("the trail holds no records yet") }
            return combined
        }
    }

    static func binds(_ node: String, _ seq: Int64) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(node)
        binds.append(seq)
        return binds
    }

    // MARK: - Export, tail, stats

    /// The filter as a PostgreSQL condition with numbered parameters, after `binds`' existing ones.
    static func condition(_ filter: AuditFilter, _ binds: inout PostgresBindings) -> [String] {
        var conditions: [String] = []
        if let since = filter.sinceMicros { binds.append(since); conditions.append("time_us >= $\(binds.count)") }
        if let until = filter.untilMicros { binds.append(until); conditions.append("time_us < $\(binds.count)") }
        if let merchant = filter.merchantID { binds.append(merchant); conditions.append("merchant_id = $\(binds.count)") }
        if let caller = filter.callerID { binds.append(caller); conditions.append("caller_id = $\(binds.count)") }
        if let request = filter.requestID { binds.append(request); conditions.append("request_id = $\(binds.count)") }
        if let code = filter.gatewayErrorCode { binds.append(code); conditions.append("gateway_error_code = $\(binds.count)") }
        return conditions
    }

    /// Streams matching records of every chain in time order (node id, then sequence, breaking ties).
    static func export(url: String, filter: AuditFilter, format: AuditExportFormat, to output: AuditOutput) throws -> Int {
        try reading(url) { reader in
            var count = 0
            if let header = format.header { try output.write(header) }
            var cursor: AuditCursor?
            while true {
                let records = try page(reader, filter: filter, after: cursor, limit: pageSize)
                for entry in records { try output.write(format.line(for: entry)) }
                count += records.count
                guard let last = records.last, records.count == pageSize else { break }
                cursor = AuditCursor(after: last)
            }
            try output.flush()
            return count
        }
    }

    /// The newest `count` records of all chains by time, then (with `follow`) each chain's new records as they
    /// commit. Following goes by each node's sequence, not by time: a record stamped earlier on one node may
    /// commit after a later one on another, and must still be printed.
    static func tail(url: String, count: Int, follow: Bool, format: AuditExportFormat, to output: AuditOutput) async throws {
        if let header = format.header { try output.write(header) }
        var seen: [String: Int64] = try reading(url) { reader in
            let newest = try entries(reader.run(PostgresQuery(
                unsafeSQL: "SELECT \(reader.columns) FROM audit_records ORDER BY time_us DESC, node_id DESC, seq DESC LIMIT \(max(0, count))")))
            for entry in newest.reversed() { try output.write(format.line(for: entry)) }
            var seen: [String: Int64] = [:]
            for node in try reader.nodes() {
                seen[node] = try reader.run("SELECT COALESCE(MAX(seq), 0) FROM audit_records WHERE node_id = \(node)").first?.decode(Int64.self) ?? 0
            }
            return seen
        }
        try output.flush()
        while follow, !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(500))
            seen = try reading(url) { reader in
                var next = seen
                var fresh: [AuditEntry] = []
                for node in try reader.nodes() {
                    let page = try entries(reader.run(PostgresQuery(
                        unsafeSQL: "SELECT \(reader.columns) FROM audit_records WHERE node_id = $1 AND seq > $2 ORDER BY seq",
                        binds: binds(node, seen[node] ?? 0))))
                    fresh += page
                    if let last = page.last { next[node] = last.seq }
                }
                for entry in fresh.sorted(by: { ($0.timeMicros, $0.nodeID, $0.seq) < ($1.timeMicros, $1.nodeID, $1.seq) }) {
                    try output.write(format.line(for: entry))
                }
                return next
            }
            try output.flush()
        }
    }

    /// Calls per merchant, caller and status in the window, across every chain (the server aggregates).
    static func stats(url: String, filter: AuditFilter) throws -> AuditStats {
        try reading(url) { reader in
            var binds = PostgresBindings()
            let clause = " WHERE " + (condition(filter, &binds) + ["phase <> 'intent'"]).joined(separator: " AND ")
            func grouped(_ column: String) throws -> [(String, Int)] {
                try reader.run(PostgresQuery(
                    unsafeSQL: "SELECT COALESCE(CAST(\(column) AS TEXT), '-') AS k, COUNT(*) AS n FROM audit_records\(clause) GROUP BY k ORDER BY n DESC, k",
                    binds: binds)
                ).map { row in
                    let (key, count) = try row.decode((String, Int64).self)
                    return (key, Int(count))
                }
            }
            var stats = AuditStats()
            stats.calls = Int(try reader.run(PostgresQuery(unsafeSQL: "SELECT COUNT(*) FROM audit_records\(clause)", binds: binds))
                .first?.decode(Int64.self) ?? 0)
            stats.byMerchant = try grouped("merchant_id")
            stats.byCaller = try grouped("caller_id")
            stats.byStatus = try grouped("status")
            return stats
        }
    }
}
