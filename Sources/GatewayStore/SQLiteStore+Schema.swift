import GRDB

extension SQLiteStore {
    /// The schema's history; a migration, once released, is never edited, only followed by a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: partners, merchants, callers, secrets, generation") { db in
            try db.execute(sql: """
                CREATE TABLE meta (
                    key TEXT PRIMARY KEY NOT NULL,
                    value INTEGER NOT NULL
                );
                INSERT INTO meta (key, value) VALUES ('generation', 0);

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
                );

                CREATE TABLE merchants (
                    id TEXT PRIMARY KEY NOT NULL,
                    partner_id TEXT NOT NULL REFERENCES partners(id),
                    account TEXT NOT NULL,
                    groups TEXT NOT NULL DEFAULT '[]',
                    status TEXT NOT NULL,
                    api_key_id TEXT,
                    api_key_version INTEGER,
                    release TEXT
                );
                -- One merchant per Klarna account: routing by KRN must be unambiguous.
                CREATE UNIQUE INDEX merchants_account ON merchants(account);
                CREATE INDEX merchants_partner ON merchants(partner_id);

                CREATE TABLE callers (
                    id TEXT PRIMARY KEY NOT NULL,
                    token_id TEXT UNIQUE,
                    token_hash TEXT,
                    certificate_fingerprint TEXT,
                    status TEXT NOT NULL
                );

                CREATE TABLE secrets (
                    owner TEXT NOT NULL,
                    credential_id TEXT NOT NULL,
                    credential_version INTEGER NOT NULL,
                    key_version INTEGER NOT NULL,
                    combined BLOB NOT NULL,
                    PRIMARY KEY (owner, credential_id, credential_version)
                );
                """)
        }
        migrator.registerMigration("v2: staged release roll-outs") { db in
            try db.execute(sql: """
                CREATE TABLE rollouts (
                    release TEXT NOT NULL,
                    group_name TEXT NOT NULL DEFAULT '',
                    percent REAL NOT NULL,
                    PRIMARY KEY (release, group_name)
                );
                """)
        }
        migrator.registerMigration("v3: change log") { db in
            try db.execute(sql: """
                CREATE TABLE admin_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time_us INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    detail TEXT NOT NULL
                );
                """)
        }
        return migrator
    }

    /// Creates or upgrades the schema.
    public func migrate() async throws {
        try SQLiteStore.migrator.migrate(pool)
    }

    /// Bumps the generation; called inside every write transaction so readers never see a change without it.
    static func bumpGeneration(_ db: Database) throws {
        try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    }

    static func readGeneration(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'generation'") ?? 0
    }
}
