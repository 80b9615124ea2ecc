import Foundation
import GRDB
import GatewayPostgres
import PostgresNIO

/// Where a page of records ended: the next page starts after it. SQLite orders one chain by `seq`; PostgreSQL
/// merges every node's chain by (time, node, seq), as `audit export` does, so the cursor carries all three.
public struct AuditCursor: Sendable, Equatable {
    /// `time_us` of the last record read.
    public var timeMicros: Int64
    /// Its sequence number.
    public var seq: Int64
    /// Its node id.
    public var nodeID: String

    /// Makes a cursor.
    public init(timeMicros: Int64, seq: Int64, nodeID: String) {
        self.timeMicros = timeMicros
        self.seq = seq
        self.nodeID = nodeID
    }

    /// The cursor after `entry`.
    public init(after entry: AuditEntry) { self.init(timeMicros: entry.timeMicros, seq: entry.seq, nodeID: entry.nodeID) }

    /// `TIME.SEQ.NODEHEX`: decimal time and sequence, then the node id's UTF-8 in lowercase hex, so the cursor is
    /// one token of a URL whatever the node id holds.
    public var text: String { "\(timeMicros).\(seq)." + nodeID.utf8.map { String(format: "%02x", $0) }.joined() }

    /// Parses `text`; nil when it is not a cursor this type wrote.
    public init?(text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count <= 18, parts[1].count <= 18, parts[2].count % 2 == 0,
            parts.allSatisfy({ !$0.isEmpty }), parts[0].allSatisfy(Self.isDigit), parts[1].allSatisfy(Self.isDigit),
            let time = Int64(parts[0]), let seq = Int64(parts[1])
        else { return nil }
        var bytes: [UInt8] = []
        var hex = parts[2][...]
        while !hex.isEmpty {
            guard let byte = UInt8(hex.prefix(2), radix: 16), hex.prefix(2).allSatisfy({ Self.isDigit($0) || ("a"..."f").contains($0) }) else { return nil }
            bytes.append(byte)
            hex = hex.dropFirst(2)
        }
        // A node id that is not UTF-8 names no node: the page after it is simply what follows in time.
        self.init(timeMicros: time, seq: seq, nodeID: String(decoding: bytes, as: UTF8.self))
    }

    /// `0`–`9` only: `Int64` alone would also take a sign.
    private static func isDigit(_ character: Character) -> Bool { ("0"..."9").contains(character) }
}

/// One page of matching records and, when more follow, where the next starts.
public struct AuditPage: Sendable {
    /// The records, in the order `audit export` writes them.
    public var entries: [AuditEntry]
    /// Set when more records match after the last one.
    public var next: AuditCursor?
}

extension AuditReader {
    /// At most `limit` records matching `filter` after `cursor`, in export order. Blocks on the store: call it off an
    /// event loop and off Swift's cooperative pool.
    public static func page(path: String, filter: AuditFilter, after cursor: AuditCursor?, limit: Int) throws -> AuditPage {
        let limit = max(1, limit)
        // One more than asked tells whether another page follows without counting every match.
        var entries: [AuditEntry]
        if PostgresURL.isPostgresURL(path) {
            entries = try AuditPostgresReader.reading(path) { try AuditPostgresReader.page($0, filter: filter, after: cursor, limit: limit + 1) }
        } else {
            let database = try AuditDatabase.openForReading(path: path)
            defer { try? database.close() }
            entries = try database.read { db in
                var (clause, arguments) = try filter.whereClause(db)
                if let cursor {
                    clause += clause.isEmpty ? " WHERE seq > ?" : " AND seq > ?"
                    _ = arguments.append(contentsOf: [cursor.seq])
                }
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records\(clause) ORDER BY seq LIMIT \(limit + 1)", arguments: arguments)
                return rows.map(AuditEntry.init(row:))
            }
        }
        let more = entries.count > limit
        if more { entries.removeLast() }
        return AuditPage(entries: entries, next: more ? entries.last.map(AuditCursor.init(after:)) : nil)
    }
}

extension AuditPostgresReader {
    /// Records of every chain matching `filter` after `cursor`, in time order (node id, then sequence, breaking ties).
    static func page(_ reader: Reader, filter: AuditFilter, after cursor: AuditCursor?, limit: Int) throws -> [AuditEntry] {
        var binds = PostgresBindings()
        var conditions = condition(filter, &binds)
        if let cursor {
            binds.append(cursor.timeMicros)
            binds.append(cursor.nodeID)
            binds.append(cursor.seq)
            conditions.append("(time_us, node_id, seq) > ($\(binds.count - 2), $\(binds.count - 1), $\(binds.count))")
        }
        let clause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try entries(reader.run(PostgresQuery(
            unsafeSQL: "SELECT \(reader.columns) FROM audit_records\(clause) ORDER BY time_us, node_id, seq LIMIT \(limit)", binds: binds)))
    }
}

extension AuditFilter {
    /// An ISO 8601 date-time, or a date (midnight UTC), as microseconds since the Unix epoch; nil for anything else.
    /// The CLI's `--since`/`--until` and the admin API's `from`/`to` read times alike.
    public static func micros(_ text: String) -> Int64? {
        // RFC 3339 allows a lowercase `t` and `z`, fractional seconds and any offset.
        let upper = text.uppercased()
        if let date = try? Date(upper, strategy: .iso8601) { return Int64(date.timeIntervalSince1970 * 1_000_000) }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = fractional.date(from: upper) { return Int64(date.timeIntervalSince1970 * 1_000_000) }
        let dateOnly = Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!).year().month().day()
        if let date = try? Date(upper, strategy: dateOnly) { return Int64(date.timeIntervalSince1970 * 1_000_000) }
        return nil
    }
}
