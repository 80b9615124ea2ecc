import Foundation
import GatewayCore
import PostgresNIO

extension PostgresStore {
    /// The schema's history, step for step the same versions as `SQLiteStore.migrations`; a step, once released,
    /// is never edited, only followed by a new one. Groups are the same JSON text as in SQLite so that both
    /// stores hold byte-identical records and `store copy` needs no conversion.
    public static let migrations: [SchemaMigration] = [
        SchemaMigration(version: 1, name: "partners, merchants, callers, secrets, generation", statements: [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "INSERT INTO meta (key, value) VALUES ('generation', 0)",
            """
            CREATE TABLE partners (
                id TEXT PRIMARY KEY,
                environment TEXT NOT NULL,
                base_url TEXT NOT NULL,
                auth_form TEXT NOT NULL,
                api_key_id TEXT NOT NULL,
                api_key_version INTEGER NOT NULL,
                client_certificate_pem TEXT NOT NULL,
                client_key_id TEXT NOT NULL,
                client_key_version INTEGER NOT NULL,
                default_release TEXT
            )
            """,
            """
            CREATE TABLE merchants (
                id TEXT PRIMARY KEY,
                partner_id TEXT NOT NULL REFERENCES partners(id),
                account TEXT NOT NULL,
                groups TEXT NOT NULL DEFAULT '[]',
                status TEXT NOT NULL,
                api_key_id TEXT,
                api_key_version INTEGER,
                release TEXT
            )
            """,
            // One merchant per Klarna account: routing by KRN must be unambiguous.
            "CREATE UNIQUE INDEX merchants_account ON merchants(account)",
            "CREATE INDEX merchants_partner ON merchants(partner_id)",
            """
            CREATE TABLE callers (
                id TEXT PRIMARY KEY,
                token_id TEXT UNIQUE,
                token_hash TEXT,
                certificate_fingerprint TEXT,
                status TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE secrets (
                owner TEXT NOT NULL,
                credential_id TEXT NOT NULL,
                credential_version INTEGER NOT NULL,
                key_version INTEGER NOT NULL,
                combined BYTEA NOT NULL,
                PRIMARY KEY (owner, credential_id, credential_version)
            )
            """,
        ]),
        SchemaMigration(version: 2, name: "staged release roll-outs", statements: [
            """
            CREATE TABLE rollouts (
                release TEXT NOT NULL,
                group_name TEXT NOT NULL DEFAULT '',
                percent DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (release, group_name)
            )
            """
        ]),
        SchemaMigration(version: 3, name: "change log", statements: [
            """
            CREATE TABLE admin_events (
                id BIGSERIAL PRIMARY KEY,
                time_us BIGINT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                detail TEXT NOT NULL
            )
            """
        ]),
        SchemaMigration(version: 4, name: "quota leasing ledger and instance heartbeats", statements: PostgresStore.quotaLeasingSchema),
        SchemaMigration(version: 5, name: "webhook events, deliveries, attempts and destinations", statements: [
            """
            CREATE TABLE webhook_destinations (
                name TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                secret_id TEXT,
                secret_version INTEGER,
                client_certificate_pem TEXT,
                client_key_id TEXT,
                client_key_version INTEGER
            )
            """,
            """
            CREATE TABLE webhook_events (
                event_id TEXT PRIMARY KEY,
                partner_id TEXT NOT NULL,
                signing_key_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                account TEXT NOT NULL,
                merchant_id TEXT,
                received_at_us BIGINT NOT NULL,
                state TEXT NOT NULL,
                body BYTEA NOT NULL
            )
            """,
            "CREATE INDEX webhook_events_received ON webhook_events(received_at_us)",
            "CREATE INDEX webhook_events_state ON webhook_events(state, received_at_us)",
            """
            CREATE TABLE webhook_deliveries (
                event_id TEXT NOT NULL REFERENCES webhook_events(event_id) ON DELETE CASCADE,
                destination TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_us BIGINT NOT NULL,
                last_status INTEGER,
                last_error TEXT,
                lease_owner TEXT,
                lease_until_us BIGINT,
                PRIMARY KEY (event_id, destination)
            )
            """,
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_us)",
            """
            CREATE TABLE webhook_attempts (
                event_id TEXT NOT NULL,
                destination TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                time_us BIGINT NOT NULL,
                status INTEGER,
                error TEXT,
                node_id TEXT NOT NULL
            )
            """,
            "CREATE INDEX webhook_attempts_event ON webhook_attempts(event_id)",
        ]),
        SchemaMigration(version: 6, name: "admin accounts", statements: [
            """
            CREATE TABLE admin_accounts (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                token_id TEXT NOT NULL UNIQUE,
                token_hash TEXT NOT NULL,
                created_at_us BIGINT NOT NULL
            )
            """,
            // The admin API pages merchants in byte order (`COLLATE "C"`, as every listing here sorts), which the
            // primary key's collation cannot serve.
            "CREATE INDEX merchants_id_bytes ON merchants (id COLLATE \"C\")",
        ]),
        // As `SQLiteStore.auditedEventsSchema`, for the same reasons.
        SchemaMigration(version: 7, name: "change log audited by running nodes", statements: [
            "ALTER TABLE admin_events ADD COLUMN audited_by TEXT",
            "ALTER TABLE admin_events ADD COLUMN audited_at_us BIGINT",
            "UPDATE admin_events SET audited_by = 'before-schema-7', audited_at_us = time_us",
            "CREATE INDEX admin_events_unfinished ON admin_events(audited_by, id) WHERE audited_at_us IS NULL",
        ]),
        // As `SQLiteStore.adminCertificateSchema`, for the same reasons.
        SchemaMigration(version: 8, name: "admin accounts' client certificates", statements: [
            "ALTER TABLE admin_accounts ADD COLUMN certificate_fingerprint TEXT",
            "CREATE UNIQUE INDEX admin_accounts_certificate ON admin_accounts(certificate_fingerprint)",
        ]),
        // As `SQLiteStore.claimTimeSchema`, for the same reasons.
        SchemaMigration(version: 9, name: "change-log claims' times", statements: [
            "ALTER TABLE admin_events ADD COLUMN claimed_at_us BIGINT",
            """
            UPDATE admin_events SET claimed_at_us = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
            WHERE audited_by IS NOT NULL AND audited_at_us IS NULL
            """,
        ]),
        // As `SQLiteStore.policyVersionsSchema`, for the same reasons.
        SchemaMigration(version: 10, name: "policy versions", statements: [
            """
            CREATE TABLE policy_versions (
                id BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL,
                version TEXT,
                yaml TEXT,
                applied_by TEXT NOT NULL,
                applied_at_us BIGINT NOT NULL,
                comment TEXT
            )
            """,
            "CREATE INDEX policy_versions_kind ON policy_versions(kind, id)",
        ]),
    ]

    /// A constant key for `pg_advisory_xact_lock`, so that instances starting together migrate one at a time.
    static let migrationLockKey: Int64 = 0x6B67_775F_6D69_6772  // "kgw_migr"

    /// Applies the pending steps in one transaction under an advisory lock: PostgreSQL's DDL is transactional,
    /// so a failed step leaves the schema as it was, and a second instance waits and then finds nothing to do.
    @discardableResult
    public func migrate() async throws -> SchemaStatus {
        try await write { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresStore.migrationLockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            let pending = try SchemaMigration.pending(PostgresStore.migrations, applied: applied)
            for step in pending {
                for statement in step.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(step.version), \(step.name))", logger: logger)
            }
            return SchemaStatus(version: applied.union(pending.map(\.version)).max() ?? 0, appliedNow: pending.map(\.version))
        }
    }
}
