import Foundation
import GatewayCore
import GRDB

extension SQLiteStore {
    /// The schema's history; a step, once released, is never edited, only followed by a new one. Versions match
    /// `PostgresStore.migrations` step for step.
    public static let migrations: [SchemaMigration] = [
        SchemaMigration(version: 1, name: "partners, merchants, callers, secrets, generation", statements: [
            """
            CREATE TABLE meta (
                key TEXT PRIMARY KEY NOT NULL,
                value INTEGER NOT NULL
            )
            """,
            "INSERT INTO meta (key, value) VALUES ('generation', 0)",
            """
            CREATE TABLE partners (
                id TEXT PRIMARY KEY NOT NULL,
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
                id TEXT PRIMARY KEY NOT NULL,
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
                id TEXT PRIMARY KEY NOT NULL,
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
                combined BLOB NOT NULL,
                PRIMARY KEY (owner, credential_id, credential_version)
            )
            """,
        ]),
        SchemaMigration(version: 2, name: "staged release roll-outs", statements: [
            """
            CREATE TABLE rollouts (
                release TEXT NOT NULL,
                group_name TEXT NOT NULL DEFAULT '',
                percent REAL NOT NULL,
                PRIMARY KEY (release, group_name)
            )
            """
        ]),
        SchemaMigration(version: 3, name: "change log", statements: [
            """
            CREATE TABLE admin_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time_us INTEGER NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                detail TEXT NOT NULL
            )
            """
        ]),
        // The shared ledger of limits across instances lives in PostgreSQL only: one SQLite file serves one
        // instance, whose limits are local. The step exists so that both stores number their versions alike.
        SchemaMigration(version: 4, name: "quota leasing ledger and instance heartbeats", statements: []),
        SchemaMigration(version: 5, name: "webhook events, deliveries, attempts and destinations", statements: [
            """
            CREATE TABLE webhook_destinations (
                name TEXT PRIMARY KEY NOT NULL,
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
                event_id TEXT PRIMARY KEY NOT NULL,
                partner_id TEXT NOT NULL,
                signing_key_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                account TEXT NOT NULL,
                merchant_id TEXT,
                received_at_us INTEGER NOT NULL,
                state TEXT NOT NULL,
                body BLOB NOT NULL
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
                next_attempt_us INTEGER NOT NULL,
                last_status INTEGER,
                last_error TEXT,
                lease_owner TEXT,
                lease_until_us INTEGER,
                PRIMARY KEY (event_id, destination)
            )
            """,
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_us)",
            """
            CREATE TABLE webhook_attempts (
                event_id TEXT NOT NULL,
                destination TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                time_us INTEGER NOT NULL,
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
                name TEXT PRIMARY KEY NOT NULL,
                role TEXT NOT NULL,
                token_id TEXT NOT NULL UNIQUE,
                token_hash TEXT NOT NULL,
                created_at_us INTEGER NOT NULL
            )
            """
        ]),
        SchemaMigration(version: 7, name: "change log audited by running nodes", statements: SQLiteStore.auditedEventsSchema),
        SchemaMigration(version: 8, name: "admin accounts' client certificates", statements: SQLiteStore.adminCertificateSchema),
        SchemaMigration(version: 9, name: "change-log claims' times", statements: SQLiteStore.claimTimeSchema),
        SchemaMigration(version: 10, name: "policy versions", statements: SQLiteStore.policyVersionsSchema),
    ]

    /// Version 10: access and rate-limit policies applied through the admin API or `policies apply`, every version
    /// kept. A row without text hands its kind back to the config's file; the newest row of a kind is in force.
    static let policyVersionsSchema = [
        """
        CREATE TABLE policy_versions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            version TEXT,
            yaml TEXT,
            applied_by TEXT NOT NULL,
            applied_at_us INTEGER NOT NULL,
            comment TEXT
        )
        """,
        "CREATE INDEX policy_versions_kind ON policy_versions(kind, id)",
    ]

    /// Version 9: when a node claimed a change-log event, so that another may take over a claim left unfinished
    /// too long (a node that never came back). Claims made before the step are dated by it: their claimants get the
    /// whole bound from now to finish them, rather than losing them at once.
    static let claimTimeSchema = [
        "ALTER TABLE admin_events ADD COLUMN claimed_at_us INTEGER",
        // julianday keeps milliseconds, where strftime('%s') would keep whole seconds.
        """
        UPDATE admin_events SET claimed_at_us = CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
        WHERE audited_by IS NOT NULL AND audited_at_us IS NULL
        """,
    ]

    /// Version 8: an admin account may hold a client certificate's SHA-256 fingerprint. Unique, since a certificate
    /// presented alone must name one account; SQLite's unique index lets any number of rows hold none.
    static let adminCertificateSchema = [
        "ALTER TABLE admin_accounts ADD COLUMN certificate_fingerprint TEXT",
        "CREATE UNIQUE INDEX admin_accounts_certificate ON admin_accounts(certificate_fingerprint)",
    ]

    /// Version 7: which node claimed each change-log event for its audit chain, and when it finished recording it.
    /// Events from before the step are marked as never to be recorded: the admin API had audited its own, and
    /// recording them now would give those changes a second record.
    static let auditedEventsSchema = [
        "ALTER TABLE admin_events ADD COLUMN audited_by TEXT",
        "ALTER TABLE admin_events ADD COLUMN audited_at_us INTEGER",
        "UPDATE admin_events SET audited_by = 'before-schema-7', audited_at_us = time_us",
        // Only unfinished events are indexed: the rows a node looks for are few, the log itself grows forever.
        "CREATE INDEX admin_events_unfinished ON admin_events(audited_by, id) WHERE audited_at_us IS NULL",
    ]

    /// The identifiers GRDB's migrator recorded before `schema_migrations` existed, by the version they became.
    package static let grdbIdentifiers: [String: Int] = [
        "v1: partners, merchants, callers, secrets, generation": 1,
        "v2: staged release roll-outs": 2,
        "v3: change log": 3,
    ]

    /// Applies the pending steps in one write transaction: SQLite's single writer makes concurrent callers (a
    /// gateway starting while the CLI migrates) take turns, and the second one finds nothing left to do.
    @discardableResult
    public func migrate() async throws -> SchemaStatus {
        try await pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL,
                    applied_at_us INTEGER NOT NULL
                )
                """)
            try SQLiteStore.adoptGRDBHistory(db)
            let applied = Set(try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations"))
            let pending = try SchemaMigration.pending(SQLiteStore.migrations, applied: applied)
            for step in pending {
                for statement in step.statements { try db.execute(sql: statement) }
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?, ?, ?)",
                    arguments: [step.version, step.name, Int64(Date().timeIntervalSince1970 * 1_000_000)])
            }
            return SchemaStatus(version: applied.union(pending.map(\.version)).max() ?? 0, appliedNow: pending.map(\.version))
        }
    }

    /// Records, once, the steps an older binary applied through GRDB's migrator, so a store made before
    /// `schema_migrations` is upgraded in place instead of being migrated twice.
    static func adoptGRDBHistory(_ db: Database) throws {
        guard try db.tableExists("grdb_migrations"),
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schema_migrations") == 0
        else { return }
        let identifiers = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        for identifier in identifiers {
            guard let version = grdbIdentifiers[identifier],
                let step = migrations.first(where: { $0.version == version })
            else { throw StoreError("the store has an unknown migration \(identifier); it was written by a newer binary") }
            try db.execute(
                sql: "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?, ?, 0)",
                arguments: [version, step.name])
        }
    }

    /// Bumps the generation; called inside every write transaction so readers never see a change without it.
    static func bumpGeneration(_ db: Database) throws {
        try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    }

    static func readGeneration(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'generation'") ?? 0
    }
}
