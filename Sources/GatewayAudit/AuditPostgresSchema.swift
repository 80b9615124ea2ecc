import GatewayCore
import GatewayPostgres
import Logging
import PostgresNIO

/// The audit trail's tables in a shared PostgreSQL database: one chain per node, keyed `(node_id, seq)`, so each
/// gateway appends to its own chain and writers never contend for a row or a sequence.
///
/// Versioned apart from the store's schema (`audit_schema_migrations`), as the SQLite trail lives in its own
/// file: the trail may be pointed at a different database than the store.
enum AuditPostgresSchema {
    static let migrations: [SchemaMigration] = [
        SchemaMigration(version: 1, name: "per-node audit chains, checkpoints and anchors", statements: [
            """
            CREATE TABLE audit_records (
                \(AuditEntry.columnDefinitions(integer: "BIGINT", of: AuditEntry.fieldNames[...])),
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (node_id, seq)
            )
            """,
            "CREATE INDEX audit_records_time ON audit_records (time_us)",
            """
            CREATE TABLE audit_checkpoints (
                node_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                time_us BIGINT NOT NULL,
                hash TEXT NOT NULL,
                key_id TEXT NOT NULL,
                public_key TEXT NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (node_id, seq)
            )
            """,
            """
            CREATE TABLE audit_anchors (
                node_id TEXT PRIMARY KEY,
                seq BIGINT NOT NULL,
                time_us BIGINT NOT NULL,
                hash TEXT NOT NULL,
                key_id TEXT NOT NULL,
                public_key TEXT NOT NULL,
                signature TEXT NOT NULL
            )
            """,
        ]),
        // Records from before hash the JSON text; the writers' are `v2` from here on.
        SchemaMigration(version: 2, name: "the canonical encoding each record's hash covers", statements: [
            "ALTER TABLE audit_records ADD COLUMN canonical_version BIGINT NOT NULL DEFAULT 1"
        ]),
    ]

    /// Serializes instances migrating at the same start-up ("kgw_audt").
    static let migrationLockKey: Int64 = 0x6B67_775F_6175_6474

    /// Applies pending steps in one transaction under an advisory lock, as the store's migrations do. Blocks: the
    /// audit worker and the CLI readers call it off any event loop.
    static func migrate(_ connection: PostgresConnection, logger: Logger) throws {
        func run(_ query: PostgresQuery) throws -> [PostgresRow] { try connection.blockingQuery(query, logger: logger) }
        _ = try run("BEGIN")
        do {
            _ = try run("SELECT pg_advisory_xact_lock(\(migrationLockKey))")
            // A step that alters `audit_records` waits for every reader's snapshot to end, and every node's
            // inserts queue behind the waiting step: bounded, the step fails, this writer reopens later (its
            // calls refused meanwhile), and the other nodes go on writing.
            _ = try run("SET LOCAL lock_timeout = '5s'")
            _ = try run("""
                CREATE TABLE IF NOT EXISTS audit_schema_migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """)
            let applied = Set(try run("SELECT version FROM audit_schema_migrations").map { try $0.decode(Int.self) })
            for step in try SchemaMigration.pending(migrations, applied: applied) {
                for statement in step.statements { _ = try run(PostgresQuery(unsafeSQL: statement)) }
                _ = try run("INSERT INTO audit_schema_migrations (version, name) VALUES (\(step.version), \(step.name))")
            }
            _ = try run("COMMIT")
        } catch {
            _ = try? run("ROLLBACK")
            throw error
        }
    }
}

extension AuditEntry {
    /// Column definitions for `names` (chained fields, in `fieldNames` order), for both stores' schemas.
    /// The columns stored as integers.
    static let integerColumns: Set = [
        "seq", "time_us", "request_bytes", "status", "response_bytes", "upstream_attempts", "upstream_latency_us",
        "credential_version", "canonical_version",
    ]

    static func columnDefinitions(integer: String, of names: ArraySlice<String>) -> String {
        let integers = integerColumns
        let required: Set = ["seq", "node_id", "time_us", "phase", "request_id", "method", "path", "upstream_attempts"]
        return names.map { name in
            "\(name) \(integers.contains(name) ? integer : "TEXT")\(required.contains(name) ? " NOT NULL" : "")"
        }.joined(separator: ",\n    ")
    }
}
