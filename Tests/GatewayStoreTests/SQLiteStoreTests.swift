import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Testing

/// What only the SQLite store has: files on disk, and the migration history of older binaries.
@Suite struct SQLiteStoreTests {
    @Test func filesAreOwnerOnly() async throws {
        let fixture = try await StoreFixture(.sqlite)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let files = try await fixture.rawContents().map(\.0)
        #expect(files.count == 3, "expected the database, -wal and -shm files: \(files)")
        for file in files { #expect(try fixture.mode(file) == 0o600, "\(file)") }
    }

    @Test func theWALHoldsRecentWritesAndNoPlaintextSecret() async throws {
        let fixture = try await StoreFixture(.sqlite)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let files = try await fixture.rawContents()
        #expect(files.contains { $0.0.hasSuffix("-wal") && !$0.1.isEmpty }, "the WAL should hold the recent writes")
        for (file, bytes) in files {
            for needle in StoreFixture.needles { #expect(bytes.range(of: Data(needle.utf8)) == nil, "\(needle) found in \(file)") }
        }
    }

    /// A store made by a binary from before `schema_migrations` (GRDB's migrator, identifiers instead of
    /// versions) is adopted in place: its data stays and no step runs twice.
    @Test func aStoreMigratedByGRDBIsAdopted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("old.sqlite").path
        let queue = try DatabaseQueue(path: path)
        // Only the steps GRDB's migrator knew exist in such a store; later ones (the webhook tables) come with migrate().
        let adopted = Set(SQLiteStore.grdbIdentifiers.values)
        try await queue.write { db in
            try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            for step in SQLiteStore.migrations where adopted.contains(step.version) {
                for statement in step.statements { try db.execute(sql: statement) }
            }
            for identifier in SQLiteStore.grdbIdentifiers.keys.sorted() { try db.execute(sql: "INSERT INTO grdb_migrations VALUES (?)", arguments: [identifier]) }
            try db.execute(sql: "UPDATE meta SET value = 41 WHERE key = 'generation'")
        }
        try queue.close()
        let store = try SQLiteStore(path: path)
        // Steps from after GRDB's time (4, the quota ledger's no-op; 5, webhooks) run now; none of the adopted ones again.
        let later = SQLiteStore.migrations.map(\.version).filter { !adopted.contains($0) }.sorted()
        #expect(try await store.migrate() == SchemaStatus(version: SQLiteStore.migrations.map(\.version).max() ?? 0, appliedNow: later))
        #expect(try await store.generation() == 41)
    }
}
