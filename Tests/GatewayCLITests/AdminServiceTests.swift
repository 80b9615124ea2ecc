import Foundation
import GatewayApp
import GatewayCore
import GatewayStore
import GatewayTestSupport
import GatewayVault
import Testing

/// The admin operations and `loadCredentials`, in process, against a real store and key-ring file.
@Suite struct AdminServiceTests {
    static let apiKey = Secret("klarna_test_api_PLANTEDSECRET_admin_91b2")
    let directory: URL
    let ringPath: String
    let admin: AdminService
    let pki: TestPKI
    let identity: TestPKI.Identity

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        ringPath = directory.appendingPathComponent("master.keys").path
        try MasterKeyRing.generate().write(to: ringPath, overwrite: false)
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("gw.sqlite").path)
        admin = AdminService(
            store: store, sealer: SecretSealer(ring: try MasterKeyRing.load(file: ringPath)), keyOrigin: .file(ringPath))
        pki = try TestPKI()
        identity = try pki.issueClient(commonName: "acq_test")
    }

    func addPartner(_ id: String = "acq_test") async throws {
        try await admin.addPartner(NewPartner(
            id: id, environment: .test, apiKey: AdminServiceTests.apiKey, certificatePEM: identity.certificatePEM,
            clientKeyPEM: Secret(identity.privateKeyPEM), authForm: .emptyUser))
    }

    @Test func loadCredentialsOpensEverything() async throws {
        try await addPartner()
        try await admin.addMerchant(
            id: "m_own", partnerID: "acq_test", account: "krn:partner:global:account:test:OWN",
            apiKey: Secret("klarna_test_api_merchant_own"))
        try await admin.addMerchant(id: "m_plain", partnerID: "acq_test", account: "krn:partner:global:account:test:PLAIN")
        let (record, token) = try await admin.addCaller(id: "checkout")
        let loaded = try await admin.loadCredentials()

        #expect(loaded.partners.count == 1)
        let partner = try #require(loaded.partners.first)
        #expect(partner.clientIdentity.fingerprint == identity.fingerprint)
        #expect(partner.clientIdentity.privateKeyPEM == Secret(identity.privateKeyPEM))
        #expect(partner.keyEnvironment == .test)
        #expect(partner.authorization == BasicAuthorization.header(for: AdminServiceTests.apiKey, form: .emptyUser))
        #expect(partner.endpoint.host == "api-global.test.klarna.com")
        let own = try #require(loaded.merchants.first { $0.record.id == "m_own" })
        #expect(own.ownAuthorization == BasicAuthorization.header(for: Secret("klarna_test_api_merchant_own"), form: .emptyUser))
        #expect(loaded.merchants.first { $0.record.id == "m_plain" }?.ownAuthorization == nil)
        #expect(loaded.callers == [record])
        #expect(try #require(token).matches(storedHash: try #require(record.tokenHash)))
        #expect(loaded.generation == (try await admin.store.generation()))
    }

    @Test func aSecretThatDoesNotOpenNamesThePartner() async throws {
        try await addPartner("acq_a")
        try await addPartner("acq_b")
        // Copy acq_a's API key ciphertext into acq_b's row: it must not open as acq_b's key.
        let secrets = try await admin.store.sealedSecrets()
        let donor = try #require(secrets.first { $0.owner == "partner:acq_a" && $0.credential.id.hasSuffix("api-key") })
        var victim = try #require(secrets.first { $0.owner == "partner:acq_b" && $0.credential.id.hasSuffix("api-key") })
        victim.combined = donor.combined
        try await admin.store.replaceSealedSecrets([victim])
        do {
            _ = try await admin.loadCredentials()
            Issue.record("a moved ciphertext loaded")
        } catch {
            let message = "\(error)"
            #expect(message.contains("partner 'acq_b'"))
            #expect(!message.contains("partner 'acq_a'"))
            #expect(!message.contains("PLANTEDSECRET"))
        }
    }

    @Test func masterKeyRotationResealsAndKeepsOldVersions() async throws {
        try await addPartner()
        try await admin.addMerchant(
            id: "m_own", partnerID: "acq_test", account: "krn:partner:global:account:test:OWN",
            apiKey: Secret("klarna_test_api_merchant_own"))
        let before = try await admin.store.generation()
        let (version, count) = try await admin.rotateMasterKey()
        #expect(version == 2)
        #expect(count == 3)
        #expect(try await admin.store.generation() == before + 1)
        let ring = try MasterKeyRing.load(file: ringPath)
        #expect(ring.versions == [1, 2])
        #expect(try await admin.store.sealedSecrets().allSatisfy { $0.keyVersion == 2 })
        let rotated = AdminService(store: admin.store, sealer: SecretSealer(ring: ring), keyOrigin: .file(ringPath))
        #expect(try await rotated.loadCredentials().partners.count == 1)
        // The old in-memory ring lacks v2: it can no longer open what was re-sealed, which is the point.
        await #expect(throws: (any Error).self) { try await admin.loadCredentials() }
    }

    @Test func partnerValidation() async throws {
        func refused(_ input: NewPartner, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) async {
            do {
                try await admin.addPartner(input)
                Issue.record("accepted", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
            }
        }
        let good = NewPartner(
            id: "acq_test", environment: .test, apiKey: AdminServiceTests.apiKey, certificatePEM: identity.certificatePEM,
            clientKeyPEM: Secret(identity.privateKeyPEM))
        var input = good
        input.environment = .live
        await refused(input, "is a test key but the environment is live")
        input = good
        input.apiKey = Secret("sk_PLANTEDSECRET")
        await refused(input, "does not start with klarna_test_api_")
        input = good
        input.baseURL = "https://api-global.klarna.com"
        await refused(input, "serves live")
        input = good
        input.baseURL = "http://localhost:1"
        await refused(input, "is not https://")
        input = good
        input.clientKeyPEM = Secret(try pki.issueClient(commonName: "other").privateKeyPEM)
        await refused(input, "does not match")
        input = good
        input.certificatePEM = "not a certificate"
        await refused(input, "certificate")
        input = good
        input.id = "krn:x"
        await refused(input, "partner id")
        let certificate = try ClientCertificate(pem: identity.certificatePEM)
        try certificate.checkValidity()
        #expect(throws: AdminError.self) { try certificate.checkValidity(at: Date() + 86_400 * 400) }
        #expect(throws: AdminError.self) { try certificate.checkValidity(at: Date() - 86_400) }
        try await admin.addPartner(good)
        await refused(good, "already exists")
        await #expect(throws: AdminError.self) {
            try await admin.rotatePartnerKey(id: "acq_test", apiKey: Secret("klarna_live_api_x"))
        }
        #expect(try await admin.rotatePartnerKey(id: "acq_test", apiKey: Secret("klarna_test_api_new")).version == 2)
        let summary = try await admin.showPartner(id: "acq_test")
        #expect(summary.apiKeyHint == "…_new")
        #expect(summary.certificateFingerprint == identity.fingerprint)
    }

    @Test func merchantRulesAndImport() async throws {
        try await addPartner()
        try await admin.addMerchant(id: "m_1", partnerID: "acq_test", account: "krn:partner:global:account:test:A1")
        await #expect(throws: AdminError.self) {
            try await admin.addMerchant(id: "m_2", partnerID: "acq_test", account: "krn:partner:global:account:test:A1")
        }
        await #expect(throws: AdminError.self) {
            try await admin.addMerchant(id: "m_3", partnerID: "ghost", account: "krn:partner:global:account:test:A3")
        }
        await #expect(throws: AdminError.self) {
            try await admin.addMerchant(
                id: "m_4", partnerID: "acq_test", account: "krn:partner:global:account:test:A4",
                apiKey: Secret("klarna_live_api_x"))
        }
        try await admin.setMerchantStatus(id: "m_1", .suspended)

        let bad = """
            id,partner,account,group
            m_1,acq_test,krn:partner:global:account:test:A1,eu
            m_5,acq_test,krn:partner:global:account:live:A5
            m_6,acq_test,krn:partner:global:account:test:A1
            m_7,acq_test,krn:partner:global:account:test:A7
            m_7,acq_test,krn:partner:global:account:test:A8
            m_8,acq_test,krn:partner:global:account:test:A9,bad group
            too,few
            """
        do {
            _ = try await admin.importMerchants(csv: bad)
            Issue.record("a bad file was imported")
        } catch {
            let message = "\(error)"
            for line in [3, 4, 6, 7, 8] { #expect(message.contains("line \(line):"), "line \(line) in \(message)") }
            #expect(!message.contains("line 2:") && !message.contains("line 5:"))
        }
        #expect(try await admin.listMerchants().map(\.id) == ["m_1"])

        let good = "id,partner,account,group\r\nm_1,acq_test,krn:partner:global:account:test:A1,eu;vip\r\n\r\nm_9,acq_test,krn:partner:global:account:test:A9\r\n"
        let result = try await admin.importMerchants(csv: good)
        #expect(result.added == 1 && result.updated == 1)
        let updated = try await admin.showMerchant(id: "m_1")
        #expect(updated.groups == ["eu", "vip"])
        #expect(updated.status == .suspended)
        try await admin.removeMerchant(id: "m_9")
        await #expect(throws: AdminError.self) { try await admin.removeMerchant(id: "m_9") }
    }

    @Test func callers() async throws {
        await #expect(throws: AdminError.self) { try await admin.addCaller(id: "c", certificateFingerprint: "abc") }
        await #expect(throws: AdminError.self) { try await admin.addCaller(id: "c", issueToken: false) }
        let (certOnly, none) = try await admin.addCaller(
            id: "batch", certificateFingerprint: identity.fingerprint.uppercased(), issueToken: false)
        #expect(none == nil)
        #expect(certOnly.certificateFingerprint == identity.fingerprint)
        let (first, token) = try await admin.addCaller(id: "checkout")
        let rotated = try await admin.rotateCallerToken(id: "checkout")
        let stored = try #require(try await admin.store.caller(id: "checkout"))
        #expect(stored.tokenID == rotated.id && stored.tokenID != first.tokenID)
        #expect(try #require(token).matches(storedHash: stored.tokenHash!) == false)
        #expect(try await admin.revokeCaller(id: "checkout").status == .revoked)
    }
}

/// The key ring and store as `config/gateway.yaml` names them.
@Suite struct ConfigKeyRingTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func config(environmentName: String? = "KGW_TEST_RING") throws -> GatewayConfig {
        var config = try ConfigLoader.decode(
            GatewayConfig.self,
            yaml: """
                node_id: t
                storage: data/gw.sqlite
                master_key: {file: keys/master.keys\(environmentName.map { ", environment: \($0)" } ?? "")}
                catalogue: c.tsv
                policies: {access: a.yaml}
                listeners: []
                upstream: {egress: [], strip_headers: [], connect_timeout_ms: 1, response_timeout_ms: 1, max_idle_per_key: 1}
                limits: {max_body_bytes: 1, max_header_bytes: 1, max_headers_total_bytes: 1}
                reload_interval_ms: 1000
                log_level: info
                """, source: "test")
        config.baseDirectory = directory.path
        return config
    }

    @Test func theVariableWinsWhenSetAndTheFileOtherwise() throws {
        let config = try config()
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("keys"), withIntermediateDirectories: true)
        let path = try AdminService.initializeKeyRing(config: config)
        #expect(path == directory.path + "/keys/master.keys")
        #expect(throws: (any Error).self) { try AdminService.initializeKeyRing(config: config) }

        #expect(try config.loadMasterKeyRing(environment: [:]).origin == .file(path))
        let text = MasterKeyRing.generate().addingNewVersion().rendered.exposedValue
        let fromVariable = try config.loadMasterKeyRing(environment: ["KGW_TEST_RING": text])
        #expect(fromVariable.origin == .environment("KGW_TEST_RING"))
        #expect(fromVariable.ring.currentVersion == 2)
    }

    @Test func rotationIsRefusedForARingFromTheEnvironment() async throws {
        let config = try config()
        let text = MasterKeyRing.generate().rendered.exposedValue
        let admin = try await AdminService.open(config: config, environment: ["KGW_TEST_RING": text])
        #expect(admin.keyOrigin == .environment("KGW_TEST_RING"))
        await #expect(throws: AdminError.self) { try await admin.rotateMasterKey() }
    }

    @Test func theLoaderPicksUpARotationByAnotherProcess() async throws {
        let config = try config(environmentName: nil)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("keys"), withIntermediateDirectories: true)
        try AdminService.initializeKeyRing(config: config)
        let pki = try TestPKI()
        let identity = try pki.issueClient(commonName: "p")
        let admin = try await AdminService.open(config: config, environment: [:])
        try await admin.addPartner(NewPartner(
            id: "p", environment: .test, apiKey: Secret("klarna_test_api_k"), certificatePEM: identity.certificatePEM,
            clientKeyPEM: Secret(identity.privateKeyPEM)))
        let loader = try await CredentialLoader.open(config: config, environment: [:])
        #expect(try await loader.loadCredentials().partners.count == 1)
        // Another admin (a separate service, as a CLI process would be) rotates the ring.
        _ = try await AdminService.open(config: config, environment: [:]).rotateMasterKey()
        #expect(try await loader.loadCredentials().partners.count == 1)
    }
}

extension AdminServiceTests {
    /// Every change the CLI can make appends one change-log event naming the OS user (here `changeActor`), with
    /// names, ids, versions and fingerprints but no secret; a refused change appends none; the admin API's service
    /// (no `changeActor`) appends none, except its roll-outs, stored as audited by the API.
    @Test func everyChangeLogsOneEventWithoutASecret() async throws {
        let admin = AdminService(store: self.admin.store, sealer: self.admin.sealer, keyOrigin: self.admin.keyOrigin, changeActor: "ops-test")
        let rotatedKey = Secret("klarna_test_api_PLANTEDrotatedADMINkey_6a")
        let merchantKey = Secret("klarna_test_api_PLANTEDmerchantADMINkey_2c")
        let signingKey = Secret("PLANTEDwebhookSIGNINGsecret_77f1")
        let destinationSecret = Secret("PLANTEDdestinationSECRET_0b3e")
        let renewed = try pki.issueClient(commonName: "acq_test renewed")
        let release = try #require(ReleasePolicy.klarnaCalendar.releases.last?.id)

        try await admin.addPartner(NewPartner(
            id: "acq_test", environment: .test, apiKey: AdminServiceTests.apiKey, certificatePEM: identity.certificatePEM,
            clientKeyPEM: Secret(identity.privateKeyPEM), authForm: .emptyUser))
        try await admin.rotatePartnerKey(id: "acq_test", apiKey: rotatedKey)
        try await admin.rotatePartnerCertificate(id: "acq_test", certificatePEM: renewed.certificatePEM, clientKeyPEM: Secret(renewed.privateKeyPEM))
        try await admin.addMerchant(id: "m1", partnerID: "acq_test", account: "krn:partner:global:account:test:M1", apiKey: merchantKey)
        try await admin.setMerchantStatus(id: "m1", .suspended)
        try await admin.setMerchantStatus(id: "m1", .active)
        let current = try await admin.showMerchant(id: "m1")
        _ = try await admin.changeMerchant(id: "m1", ifMatch: current.etag) { $0.groups = ["eu"] }
        _ = try await admin.importMerchants(csv: "id,partner,account\nm2,acq_test,krn:partner:global:account:test:M2\n")
        try await admin.removeMerchant(id: "m2")
        let (_, token) = try await admin.addCaller(id: "checkout")
        let rotatedToken = try await admin.rotateCallerToken(id: "checkout")
        try await admin.revokeCaller(id: "checkout")
        let (_, adminToken) = try await admin.addAdmin(name: "ops", role: .viewer)
        try await admin.removeAdmin(name: "ops")
        _ = try await admin.rotateMasterKey()
        try await admin.rollOut(release: release, percent: 10, group: nil, policy: .klarnaCalendar)
        try await admin.rollBack(release: release)
        try await admin.addWebhookKey(partnerID: "acq_test", keyID: "key-1", secret: signingKey)
        try await admin.removeWebhookKey(partnerID: "acq_test", keyID: "key-1")
        try await admin.addWebhookDestination(name: "orders", url: "https://hooks.example/orders", secret: destinationSecret, clientCertificatePEM: nil, clientKeyPEM: nil)
        try await admin.removeWebhookDestination(name: "orders", routesPath: nil)
        let available = try #require(ReleasePolicy.klarnaCalendar.releases.last { $0.isAvailable(in: .test, on: AdminService.today()) }?.id)
        try await admin.addPartner(NewPartner(
            id: "acq_spare", environment: .test, apiKey: rotatedKey, certificatePEM: renewed.certificatePEM, clientKeyPEM: Secret(renewed.privateKeyPEM)))
        try await admin.updatePartner(id: "acq_spare", PartnerChange(authForm: .emptyUser, defaultRelease: .some(available)), policy: .klarnaCalendar)
        try await admin.removePartner(id: "acq_spare")
        // Refused or without effect: no event.
        await #expect(throws: (any Error).self) { try await admin.removeMerchant(id: "absent") }
        await #expect(throws: (any Error).self) { try await admin.revokeCaller(id: "absent") }
        await #expect(throws: AdminService.PartnerInUse.self) { try await admin.removePartner(id: "acq_test") }
        await #expect(throws: AdminError.self) { try await admin.removePartner(id: "acq_spare") }
        await #expect(throws: AdminError.self) { try await admin.updatePartner(id: "acq_test", PartnerChange(baseURL: "http://localhost:1"), policy: .klarnaCalendar) }
        #expect(try await admin.replayWebhookDeliveries(eventID: nil, destination: nil) == 0)

        let events = try await admin.store.adminEvents()
        #expect(events.map(\.action) == [
            "partners.add", "partners.rotate-key", "partners.rotate-cert", "merchants.add", "merchants.suspend", "merchants.resume",
            "merchants.update", "merchants.import", "merchants.remove", "callers.add", "callers.rotate-token", "callers.revoke",
            "admins.add", "admins.remove", "keys.rotate", "releases.rollout", "releases.rollback", "webhooks.keys.add",
            "webhooks.keys.remove", "webhooks.destinations.add", "webhooks.destinations.remove", "partners.add", "partners.update",
            "partners.remove",
        ])
        #expect(events.allSatisfy { $0.actor == "ops-test" && $0.auditedBy == nil })
        #expect(events.first { $0.action == "callers.add" }?.detail == "checkout token \(try #require(token).id) certificate -")
        #expect(events.first { $0.action == "partners.rotate-cert" }?.detail.contains(renewed.fingerprint) == true)
        #expect(events.first { $0.action == "partners.update" }?.detail == "acq_spare auth form empty-user default release \(available)")
        #expect(events.last?.detail == "acq_spare")
        let secrets = [
            AdminServiceTests.apiKey.exposedValue, rotatedKey.exposedValue, merchantKey.exposedValue, signingKey.exposedValue,
            destinationSecret.exposedValue, secretPart(ofPrivateKeyPEM: renewed.privateKeyPEM), try #require(token).secret.exposedValue, rotatedToken.secret.exposedValue,
            String(adminToken.exposedValue.suffix(43)),
        ]
        for event in events { for secret in secrets { #expect(!event.detail.contains(secret), "\(event.action) holds a secret") } }

        // The admin API's service: no event of its own, but its roll-outs for the release history, already audited.
        let api = AdminService(store: admin.store, sealer: admin.sealer, changeActor: nil)
        try await api.setMerchantStatus(id: "m1", .suspended)
        try await api.rollOut(release: release, percent: 5, group: nil, policy: .klarnaCalendar, actor: "admin:alice")
        let after = try await admin.store.adminEvents().dropFirst(events.count)
        #expect(after.map(\.action) == ["releases.rollout"])
        #expect(after.first?.actor == "admin:alice" && after.first?.auditedBy == AdminEvent.auditedByAdminAPI)
    }
}
