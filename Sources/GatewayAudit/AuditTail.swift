import GRDB
import GatewayPostgres
import PostgresNIO

extension AuditReader {
    /// The newest `limit` records matching `filter`, in export order (oldest of them first): where a tail starts
    /// when it has no cursor yet. Blocks on the store: call it off an event loop and off Swift's cooperative pool.
    public static func latest(path: String, filter: AuditFilter, limit: Int) throws -> [AuditEntry] {
        let limit = max(1, limit)
        if PostgresURL.isPostgresURL(path) {
            return try AuditPostgresReader.reading(path) { try AuditPostgresReader.latest($0, filter: filter, limit: limit) }
        }
        let database = try AuditDatabase.openForReading(path: path)
        defer { try? database.close() }
        return try database.read { db in
            let (clause, arguments) = try filter.whereClause(db)
            return try Row.fetchAll(
                db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records\(clause) ORDER BY seq DESC LIMIT \(limit)", arguments: arguments
            ).map(AuditEntry.init(row:)).reversed()
        }
    }
}

extension AuditPostgresReader {
    /// The newest `limit` records of every chain matching `filter`, in time order as `page` reads them.
    static func latest(_ reader: Reader, filter: AuditFilter, limit: Int) throws -> [AuditEntry] {
        var binds = PostgresBindings()
        let conditions = condition(filter, &binds)
        let clause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try entries(reader.run(PostgresQuery(
            unsafeSQL: "SELECT \(reader.columns) FROM audit_records\(clause) ORDER BY time_us DESC, node_id DESC, seq DESC LIMIT \(limit)",
            binds: binds))).reversed()
    }
}
