import Foundation
import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayStore
import GatewayTestSupport
import GatewayVault
import Testing

/// `store copy` and `migrate`: an embedded deployment moved onto PostgreSQL and back, in process and through the
/// built binary.
@Suite struct StoreCopyTests {
    static let merchantKey = Secret("klarna_test_api_PLANTEDMERCHANTKEY_copy_5e1")
    static let partnerKey = Secret("klarna_test_api_PLANTEDSECRET_copy_c0ffee")

    static var serverURL: String? { TestPostgres.serverURL }
    static var postgresRequired: Bool { TestPostgres.required }

    /// A new PostgreSQL database when a server is given; a failure when one is required but missing; else nil.
    static func postgresDatabase() async throws -> String? {
        guard let server = serverURL else {
            if postgresRequired { throw AdminError("KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server") }
            print("note: StoreCopyTests copies SQLite to SQLite only: KGW_TEST_POSTGRES_URL is not set (use bin/with-postgres)")
            return nil
        }
        return try await PostgresStore.createDatabase(named: TestPostgres.databaseName("kgw_copy_"), on: server)
    }

    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// A SQLite store with a bit of everything: partner, merchants (one with its own key), callers, an admin
    /// account, a roll-out, a pin, the change log and the gateway's own secret.
    static func populatedStore(at path: String, sealer: SecretSealer) async throws -> AdminService {
        let admin = AdminService(store: try await SQLiteStore.open(path: path), sealer: sealer)
        let identity = try TestPKI().issueClient(commonName: "acq")
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: partnerKey, certificatePEM: identity.certificatePEM,
            clientKeyPEM: Secret(identity.privateKeyPEM), authForm: .emptyUser))
        try await admin.addMerchant(id: "m_own", partnerID: "acq", account: "krn:partner:global:account:test:OWN", apiKey: merchantKey)
        for index in 0..<250 {
            try await admin.store.saveMerchants(
                [MerchantRecord(id: "m_\(index)", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:A\(index)")!,
                                groups: index % 3 == 0 ? ["eu", "tier \"1\""] : [])], secrets: [])
        }
        _ = try await admin.addCaller(id: "checkout")
        _ = try await admin.addCaller(id: "batch", certificateFingerprint: String(repeating: "cd", count: 32), issueToken: false)
        _ = try await admin.addAdmin(name: "ops", role: .operator)
        try await admin.store.saveRollout(Rollout(release: "v2/r6", percent: 12.5, group: "eu"))
        try await admin.store.appendAdminEvent(AdminEvent(timeMicros: 1_700_000_000_000_000, actor: "ops", action: "releases.rollout", detail: "v2/r6 eu 12.5%"))
        try await admin.store.saveSecrets([try sealer.seal(Secret("gateway-own-signing-key"), owner: "gateway", credential: CredentialRef(id: "audit_signing_key", version: 1))])
        return admin
    }

    static func sameRecords(_ a: any GatewayStore, _ b: any GatewayStore) async throws -> Bool {
        let (x, y) = (try await a.contents(), try await b.contents())
        let (xEvents, yEvents) = (try await a.adminEvents(), try await b.adminEvents())
        let (xAdmins, yAdmins) = (try await (a as? any AdminAccountStore)?.adminAccounts(), try await (b as? any AdminAccountStore)?.adminAccounts())
        return x.partners == y.partners && x.merchants == y.merchants && x.callers == y.callers
            && Set(x.secrets) == Set(y.secrets) && x.rollouts == y.rollouts && xEvents == yEvents && xAdmins == yAdmins
    }

    @Test func aCopyThereAndBackHoldsEveryRecordAndItsSecretsStillOpen() async throws {
        let directory = try Self.temporaryDirectory()
        let sealer = SecretSealer(ring: .generate())
        let original = try await Self.populatedStore(at: directory.appendingPathComponent("a.sqlite").path, sealer: sealer)
        let middleLocation = try await Self.postgresDatabase() ?? directory.appendingPathComponent("b.sqlite").path
        let middle = try await GatewayConfig.openStore(middleLocation)
        // Two versions of the access policy and a return to the file: the copy keeps their order, so the same one is in force.
        let policies = try #require(original.store as? any PolicyVersionStore)
        var newest: Int64?
        for text in ["callers: {}\n", "callers: {a: {merchants: [m1], families: [\"*\"]}}\n", nil] as [String?] {
            newest = try await policies.appendPolicyVersion(
                PolicyVersion(kind: .access, version: text.map { EntityTag.hashing($0) }, yaml: text, appliedBy: "ops", appliedAtMicros: 7, comment: "c"),
                expectingNewest: newest)?.id
        }
        let history = try await policies.policyVersions(.access, before: nil, limit: 10)

        let report = try await StoreCopy.copy(from: original.store, to: middle)
        // Six events: the partner, the merchant with its own key, two callers and the admin account, each added through
        // AdminService (which logs every change), and the roll-out's, appended directly.
        #expect(
            report == StoreCopy.Report(partners: 1, merchants: 251, callers: 2, secrets: 4, rollouts: 1, adminEvents: 6, adminAccounts: 1, policyVersions: 3))
        #expect(try await Self.sameRecords(original.store, middle))
        let copied = try await (middle as? any PolicyVersionStore)?.policyVersions(.access, before: nil, limit: 10) ?? []
        #expect(copied.map(\.yaml) == history.map(\.yaml) && copied.map(\.version) == history.map(\.version))
        // The copy serves: secrets open with the same key ring, as sealed.
        let loaded = try await CredentialLoader(store: middle, sealer: sealer).loadCredentials()
        #expect(loaded.merchants.first { $0.record.id == "m_own" }?.ownAuthorization == BasicAuthorization.header(for: Self.merchantKey, form: .emptyUser))
        #expect(loaded.partners.first?.authorization == BasicAuthorization.header(for: Self.partnerKey, form: .emptyUser))

        // Back again, into a new SQLite file.
        let back = try await GatewayConfig.openStore(directory.appendingPathComponent("c.sqlite").path)
        _ = try await StoreCopy.copy(from: middle, to: back)
        #expect(try await Self.sameRecords(original.store, back))
        #expect(try await (back as? any PolicyVersionStore)?.policyVersions(.access, before: nil, limit: 10).map(\.yaml) == history.map(\.yaml))

        // A destination that already holds records is refused, and left as it was.
        let before = try await middle.generation()
        let error = await #expect(throws: AdminError.self) { _ = try await StoreCopy.copy(from: original.store, to: middle) }
        #expect(error?.message.contains("not empty") == true)
        #expect(try await middle.generation() == before)
    }

    @Test func verificationNamesWhatDiffers() async throws {
        let directory = try Self.temporaryDirectory()
        let sealer = SecretSealer(ring: .generate())
        let original = try await Self.populatedStore(at: directory.appendingPathComponent("a.sqlite").path, sealer: sealer)
        let other = try await SQLiteStore.open(path: directory.appendingPathComponent("b.sqlite").path)
        let contents = try await original.store.contents()
        _ = try await StoreCopy.copy(from: original.store, to: other)
        _ = try await other.deleteMerchant(id: "m_7")
        let events = try await original.store.adminEvents()
        let error = await #expect(throws: AdminError.self) {
            try await StoreCopy.verify(source: contents, sourceEvents: events, destination: other)
        }
        #expect(error?.message.contains("merchants: 251 in the source, 250 in the destination") == true, "\(String(describing: error))")
    }

    /// The built binary: `migrate` against PostgreSQL, `store copy` from SQLite, then admin commands on the copy.
    @Test(.enabled(if: serverURL != nil || postgresRequired, "needs PostgreSQL: run under bin/with-postgres"))
    func theCommandsMoveAnEmbeddedDeploymentOntoPostgres() async throws {
        let database = try #require(try await Self.postgresDatabase())
        let directory = try Self.temporaryDirectory()
        let ringPath = directory.appendingPathComponent("master.keys").path
        try MasterKeyRing.generate().write(to: ringPath, overwrite: false)
        let sealer = SecretSealer(ring: try MasterKeyRing.load(file: ringPath))
        let sqlitePath = directory.appendingPathComponent("gateway.sqlite").path
        _ = try await Self.populatedStore(at: sqlitePath, sealer: sealer)
        let config = directory.appendingPathComponent("gateway.yaml").path
        try """
        storage: "\(database)"
        master_key: {file: master.keys}
        listeners: []
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let binary = ChildProcess.productPath("klarna-gateway")
        var transcript = ""
        @discardableResult
        func run(_ arguments: [String], expect status: Int32 = 0) async throws -> String {
            let result = try await ChildProcess.run(binary, arguments, directory: directory, stdin: nil, timeout: .seconds(120))
            transcript += result.stdout + result.stderr
            #expect(result.status == status, "\(arguments.joined(separator: " ")): \(result.stderr)")
            return result.stdout + result.stderr
        }

        let versions = PostgresStore.migrations.map(\.version)
        let latest = versions.max() ?? 0
        #expect(try await run(["migrate", "--config", config]).contains("schema version \(latest) (applied now: \(versions.map(String.init).joined(separator: ", ")))"))
        #expect(try await run(["migrate", "--config", config]).contains("schema version \(latest) (already current)"))
        let copied = try await run(["store", "copy", "--from", sqlitePath, "--to", database])
        #expect(copied.contains("merchants     251"), "\(copied)")
        #expect(try await run(["store", "copy", "--from", sqlitePath, "--to", database], expect: 1).contains("not empty"))
        let listed = try await run(["merchants", "list", "--config", config])
        #expect(listed.contains("m_own") && listed.contains("m_249"))
        try await run(["merchants", "add", "m_new", "--partner", "acq", "--account", "krn:partner:global:account:test:NEW", "--config", config])
        #expect(try await run(["merchants", "show", "m_new", "--config", config]).contains("NEW"))
        for needle in [Self.merchantKey.exposedValue, Self.partnerKey.exposedValue, "PLANTED"] {
            #expect(!transcript.contains(needle), "\(needle) in the commands' output")
        }
    }
}
