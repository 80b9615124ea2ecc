import Foundation
import GatewayCore
import GatewayPostgres
import GatewayStore
import GatewayTestSupport
import GatewayVault
import GRDB
import Logging
import PostgresNIO
import Testing

/// Which store a shared test runs against.
enum StoreKind: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// The server the PostgreSQL cases use (bin/with-postgres sets it; bin/test runs everything under it).
    static let postgresURLVariable = "KGW_TEST_POSTGRES_URL"

    /// SQLite always; PostgreSQL when a server is given, or when one is required (CI, `KGW_REQUIRE_POSTGRES=1`),
    /// in which case its cases fail for lack of it instead of silently not running.
    static let available: [StoreKind] = {
        let environment = ProcessInfo.processInfo.environment
        if let url = environment[postgresURLVariable], !url.isEmpty { return [.sqlite, .postgres] }
        if postgresRequired { return [.sqlite, .postgres] }
        print("note: the PostgreSQL store tests do not run: \(postgresURLVariable) is not set (run them with `bin/with-postgres swift test ...`)")
        return [.sqlite]
    }()

    /// PostgreSQL only, under the same rule.
    static let postgresOnly: [StoreKind] = available.filter { $0 == .postgres }

    static var postgresRequired: Bool { TestPostgres.required }

    /// The server's URL, or a failure that says how to provide one.
    static func postgresServerURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment[postgresURLVariable], !url.isEmpty else {
            throw StoreError("\(postgresURLVariable) is not set but PostgreSQL is required here (CI or KGW_REQUIRE_POSTGRES=1); bin/test starts a server")
        }
        return url
    }
}

/// A fresh store of either kind (tests run in parallel): SQLite in its own temporary directory, PostgreSQL in its
/// own database on the test server; with a sealer and planted secrets.
struct StoreFixture {
    let kind: StoreKind
    let store: any GatewayStore
    /// The SQLite file, or the PostgreSQL URL of this test's database.
    let location: String
    let sealer = SecretSealer(ring: .generate())

    static let plantedAPIKey = Secret("klarna_test_api_PLANTEDSECRET_store_4f1c9a77e2")
    static let plantedMerchantKey = Secret("klarna_test_api_PLANTEDMERCHANTKEY_b93e")
    static let plantedClientKey = Secret("""
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPLANTEDCLIENTKEYxx
        -----END PRIVATE KEY-----
        """)
    static let needles = ["PLANTEDSECRET", "PLANTEDMERCHANTKEY", "PLANTEDCLIENTKEY", plantedAPIKey.exposedValue]

    init(_ kind: StoreKind = .sqlite) async throws {
        self.kind = kind
        location = try await StoreFixture.freshLocation(kind)
        store = try await StoreFixture.open(kind, location)
    }

    /// A new empty location: a path in a new temporary directory, or a new database on the test server.
    static func freshLocation(_ kind: StoreKind) async throws -> String {
        switch kind {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
            return directory.appendingPathComponent("gateway.sqlite").path
        case .postgres:
            let name = TestPostgres.databaseName("kgw_")
            return try await PostgresStore.createDatabase(named: name, on: try StoreKind.postgresServerURL())
        }
    }

    static func open(_ kind: StoreKind, _ location: String) async throws -> any GatewayStore {
        switch kind {
        case .sqlite: try await SQLiteStore.open(path: location)
        case .postgres: try await PostgresStore.open(url: location + "?pool_max=4")
        }
    }

    /// A second, independent instance on the same database (another gateway, or the CLI).
    func reopen() async throws -> any GatewayStore { try await StoreFixture.open(kind, location) }

    /// Runs SQL directly against the database, bypassing the store (to plant what only another binary writes).
    func execute(_ sql: String) async throws {
        switch kind {
        case .sqlite:
            let queue = try DatabaseQueue(path: location)
            try await queue.write { db in try db.execute(sql: sql) }
        case .postgres:
            try await PostgresAdmin.execute(url: location, sql)
        }
    }

    /// Every table's rows as text, as the database holds them: what an attacker with the database would read.
    func rawContents() async throws -> [(String, Data)] {
        switch kind {
        case .sqlite:
            return ["", "-wal", "-shm"].compactMap { suffix in
                FileManager.default.contents(atPath: location + suffix).map { (location + suffix, $0) }
            }
        case .postgres:
            var dumps: [(String, Data)] = []
            for table in ["partners", "merchants", "callers", "secrets", "rollouts", "admin_events", "meta"] {
                // encode(..., 'escape') shows bytea as its bytes, so plaintext in a BLOB would be found too.
                let extra = table == "secrets" ? " || encode(t.combined, 'escape')" : ""
                let text = try await PostgresAdmin.texts(url: location, "SELECT row_to_json(t)::text\(extra) FROM \(table) t")
                dumps.append((table, Data(text.joined(separator: "\n").utf8)))
            }
            return dumps
        }
    }

    func partner(_ id: String = "acq_test", apiKeyVersion: Int = 1) throws -> (PartnerRecord, [SealedSecret]) {
        let record = PartnerRecord(
            id: id, environment: .test, apiKey: SecretOwner.partnerAPIKey(id, version: apiKeyVersion),
            clientCertificatePEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            clientKey: SecretOwner.partnerClientKey(id, version: 1)
        )
        let owner = SecretOwner.partner(id)
        return (
            record,
            [
                try sealer.seal(StoreFixture.plantedAPIKey, owner: owner, credential: record.apiKey),
                try sealer.seal(StoreFixture.plantedClientKey, owner: owner, credential: record.clientKey),
            ]
        )
    }

    static func merchant(_ index: Int, partner: String = "acq_test") -> MerchantRecord {
        MerchantRecord(
            id: "m_\(index)", partnerID: partner, account: AccountKRN("krn:partner:global:account:test:ACC\(index)")!,
            groups: index.isMultiple(of: 2) ? ["even", "eu"] : []
        )
    }

    func mode(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }
}

/// Direct SQL against the test server, for creating databases and planting rows.
enum PostgresAdmin {
    static func withClient<T: Sendable>(url: String, _ body: (PostgresClient) async throws -> T) async throws -> T {
        let configuration = try PostgresURL(url + (url.contains("?") ? "&" : "?") + "pool_max=1").clientConfiguration()
        let client = PostgresClient(configuration: configuration)
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        return try await body(client)
    }

    static func execute(url: String, _ sql: String) async throws {
        try await withClient(url: url) { client in
            do {
                try await client.query(PostgresQuery(unsafeSQL: sql))
            } catch {
                throw StoreError("\(sql): \(String(reflecting: error))")
            }
        }
    }

    static func texts(url: String, _ sql: String) async throws -> [String] {
        try await withClient(url: url) { client in
            var texts: [String] = []
            for try await text in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(String.self) { texts.append(text) }
            return texts
        }
    }
}
