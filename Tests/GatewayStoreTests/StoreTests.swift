import Foundation
import GatewayCore
import GatewayPostgres
import GatewayStore
import GatewayVault
import Testing

/// The store contract, run against both stores: SQLite, and PostgreSQL on the server bin/test starts.
@Suite struct StoreTests {
    @Test(arguments: StoreKind.available)
    func partnersRoundTripWithTheirSecrets(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (record, secrets) = try fixture.partner()
        try await fixture.store.savePartner(record, secrets: secrets)
        #expect(try await fixture.store.partners() == [record])
        #expect(try await fixture.store.partner(id: "acq_test") == record)
        #expect(try await fixture.store.partner(id: "nope") == nil)
        let stored = try await fixture.store.sealedSecrets()
        #expect(Set(stored) == Set(secrets))
        #expect(try fixture.sealer.open(stored.first { $0.credential == record.apiKey }!) == StoreFixture.plantedAPIKey)

        // A rotation adds a version and keeps the previous one.
        var rotated = record
        rotated.apiKey = SecretOwner.partnerAPIKey("acq_test", version: 2)
        rotated.baseURL = "https://localhost:9443"
        rotated.defaultRelease = "v2/r5"
        let sealed = try fixture.sealer.seal(Secret("klarna_test_api_second"), owner: "partner:acq_test", credential: rotated.apiKey)
        try await fixture.store.savePartner(rotated, secrets: [sealed])
        #expect(try await fixture.store.partners() == [rotated])
        #expect(try await fixture.store.sealedSecrets().count == 3)
    }

    @Test(arguments: StoreKind.available)
    func merchantsRoundTripAndDelete(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        var own = StoreFixture.merchant(2)
        own.apiKey = SecretOwner.merchantAPIKey(own.id, version: 1)
        own.release = "v2/r5"
        let ownSecret = try fixture.sealer.seal(
            StoreFixture.plantedMerchantKey, owner: SecretOwner.merchant(own.id), credential: own.apiKey!)
        let plain = StoreFixture.merchant(1)
        try await fixture.store.saveMerchants([plain, own], secrets: [ownSecret])
        #expect(try await fixture.store.merchants() == [plain, own])
        #expect(try await fixture.store.merchant(id: "m_2") == own)
        #expect(try await fixture.store.merchant(id: "m_3") == nil)
        #expect(try await fixture.store.merchant(account: own.account) == own)
        #expect(try await fixture.store.merchant(account: AccountKRN("krn:partner:global:account:test:NONE")!) == nil)

        var suspended = plain
        suspended.status = .suspended
        suspended.groups = ["a", "b\"quoted"]
        try await fixture.store.saveMerchants([suspended], secrets: [])
        #expect(try await fixture.store.merchant(id: "m_1") == suspended)

        // The same merchant twice in one batch: the last one wins, as a row-by-row upsert would have it.
        var first = StoreFixture.merchant(4)
        first.groups = ["first"]
        var second = first
        second.groups = ["second"]
        try await fixture.store.saveMerchants([first, second], secrets: [])
        #expect(try await fixture.store.merchant(id: "m_4")?.groups == ["second"])

        #expect(try await fixture.store.deleteMerchant(id: "m_2"))
        #expect(try await fixture.store.deleteMerchant(id: "m_2") == false)
        #expect(try await fixture.store.merchants() == [suspended, second])
        #expect(try await fixture.store.sealedSecrets().allSatisfy { $0.owner != "merchant:m_2" })
    }

    @Test(arguments: StoreKind.available)
    func partnerDeletedWithItsSecretsOnlyWhenNoMerchantUsesIt(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        try await fixture.store.saveMerchants([StoreFixture.merchant(1)], secrets: [])
        let generation = try await fixture.store.generation()
        #expect(try await fixture.store.deletePartner(id: partner.id) == .inUse(merchants: 1))
        #expect(try await fixture.store.partners() == [partner], "a partner in use is kept")
        #expect(try await fixture.store.generation() == generation, "a refused deletion changes nothing")
        #expect(try await fixture.store.deleteMerchant(id: "m_1"))
        #expect(try await fixture.store.deletePartner(id: partner.id) == .deleted)
        #expect(try await fixture.store.partners().isEmpty)
        #expect(try await fixture.store.sealedSecrets().allSatisfy { $0.owner != SecretOwner.partner(partner.id) }, "its secrets go with it")
        #expect(try await fixture.store.generation() > generation)
        #expect(try await fixture.store.deletePartner(id: partner.id) == .notFound)
    }

    @Test(arguments: StoreKind.available)
    func oneAccountBelongsToOneMerchant(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        try await fixture.store.saveMerchants([StoreFixture.merchant(1)], secrets: [])
        var clash = StoreFixture.merchant(2)
        clash.account = StoreFixture.merchant(1).account
        let before = try await fixture.store.generation()
        await #expect(throws: (any Error).self) { try await fixture.store.saveMerchants([clash], secrets: []) }
        #expect(try await fixture.store.merchants().map(\.id) == ["m_1"])
        #expect(try await fixture.store.generation() == before, "a refused write changes nothing, generation included")
    }

    @Test(arguments: StoreKind.available)
    func merchantsNeedAnExistingPartner(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        await #expect(throws: (any Error).self) {
            try await fixture.store.saveMerchants([StoreFixture.merchant(1, partner: "ghost")], secrets: [])
        }
        #expect(try await fixture.store.merchants().isEmpty)
    }

    @Test(arguments: StoreKind.available)
    func callersRoundTrip(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let token = CallerToken.generate()
        var caller = CallerRecord(id: "checkout", tokenID: token.id, tokenHash: token.secretHash, certificateFingerprint: nil)
        let certOnly = CallerRecord(id: "batch", tokenID: nil, tokenHash: nil, certificateFingerprint: String(repeating: "ab", count: 32))
        try await fixture.store.saveCaller(caller)
        try await fixture.store.saveCaller(certOnly)
        #expect(try await fixture.store.callers() == [certOnly, caller])
        caller.status = .revoked
        try await fixture.store.saveCaller(caller)
        #expect(try await fixture.store.caller(id: "checkout")?.status == .revoked)
    }

    @Test(arguments: StoreKind.available)
    func replacingSealedSecretsReseals(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let rotated = SecretSealer(ring: fixture.sealer.ring.addingNewVersion())
        let resealed = try await fixture.store.sealedSecrets().map { try rotated.reseal($0) }
        try await fixture.store.replaceSealedSecrets(resealed)
        let stored = try await fixture.store.sealedSecrets()
        #expect(stored.allSatisfy { $0.keyVersion == 2 })
        #expect(try stored.map { try rotated.open($0) }.contains(StoreFixture.plantedClientKey))

        var invented = resealed[0]
        invented.credential.version = 99
        await #expect(throws: StoreError.self) { try await fixture.store.replaceSealedSecrets([invented]) }
    }

    @Test(arguments: StoreKind.available)
    func resealingEverySecretIsAllOrNothing(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        try await fixture.store.saveSecrets([try fixture.sealer.seal(Secret("gateway-own"), owner: "gateway", credential: CredentialRef(id: "audit_signing_key", version: 1))])
        let rotated = SecretSealer(ring: fixture.sealer.ring.addingNewVersion())
        #expect(try await fixture.store.resealAllSecrets { try rotated.reseal($0) } == 3)
        #expect(try await fixture.store.sealedSecrets().allSatisfy { $0.keyVersion == 2 })

        struct Refused: Error {}
        let before = try await fixture.store.sealedSecrets()
        await #expect(throws: (any Error).self) {
            _ = try await fixture.store.resealAllSecrets { secret in
                if secret.owner == "gateway" { throw Refused() }
                return secret
            }
        }
        #expect(try await fixture.store.sealedSecrets() == before)
    }

    @Test(arguments: StoreKind.available)
    func rolloutsAndTheChangeLogRoundTrip(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let all = Rollout(release: "v2/r6", percent: 12.5, group: nil)
        let eu = Rollout(release: "v2/r6", percent: 50, group: "eu")
        let other = Rollout(release: "v2/r7", percent: 1, group: nil)
        try await fixture.store.saveRollout(eu)
        try await fixture.store.saveRollout(all)
        try await fixture.store.saveRollout(other)
        #expect(try await fixture.store.rollouts() == [all, eu, other])
        var raised = eu
        raised.percent = 75
        try await fixture.store.saveRollout(raised)
        #expect(try await fixture.store.rollouts() == [all, raised, other])
        #expect(try await fixture.store.deleteRollouts(release: "v2/r6") == 2)
        #expect(try await fixture.store.rollouts() == [other])
        #expect(try await fixture.store.contents().rollouts == [other])

        let generation = try await fixture.store.generation()
        let events = [
            AdminEvent(timeMicros: 1_700_000_000_000_001, actor: "ops", action: "releases.rollout", detail: "v2/r6 12.5%"),
            AdminEvent(timeMicros: 1_700_000_000_000_000, actor: "ops2", action: "releases.rollback", detail: "ünïcødé"),
        ]
        for event in events { try await fixture.store.appendAdminEvent(event) }
        #expect(try await fixture.store.adminEvents() == events, "oldest first means in the order appended")
        #expect(try await fixture.store.generation() == generation, "the change log changes nothing the gateway serves")
    }

    @Test(arguments: StoreKind.available)
    func everyWriteBumpsTheGenerationSeenByAnotherInstance(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let other = try await fixture.reopen()
        var expected = try await fixture.store.generation()
        #expect(try await other.generation() == expected)

        func wrote(_ what: String) async throws {
            expected += 1
            #expect(try await fixture.store.generation() == expected, "\(what)")
            #expect(try await other.generation() == expected, "\(what) seen by a second instance")
        }
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        try await wrote("savePartner")
        try await fixture.store.saveMerchants([StoreFixture.merchant(1)], secrets: [])
        try await wrote("saveMerchants")
        try await fixture.store.saveCaller(CallerRecord(id: "c", tokenID: nil, tokenHash: nil, certificateFingerprint: "00"))
        try await wrote("saveCaller")
        _ = try await fixture.store.deleteMerchant(id: "m_1")
        try await wrote("deleteMerchant")
        try await fixture.store.replaceSealedSecrets(try await fixture.store.sealedSecrets())
        try await wrote("replaceSealedSecrets")
        try await fixture.store.saveRollout(Rollout(release: "v2/r6", percent: 10, group: nil))
        try await wrote("saveRollout")
        // The second instance writes too, and the first sees it.
        try await other.saveMerchants([StoreFixture.merchant(5)], secrets: [])
        expected += 1
        #expect(try await fixture.store.generation() == expected)
        let contents = try await fixture.store.contents()
        #expect(contents.generation == expected)
        #expect(contents.merchants.map(\.id) == ["m_5"])
        #expect(contents.partners == [partner])
        #expect(contents.callers.map(\.id) == ["c"])
        #expect(contents.rollouts.count == 1)
    }

    @Test(arguments: StoreKind.available)
    func migrationsAreVersionedAndRunOnce(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        // Both stores number their steps alike; the latest is the schema version.
        let latest = try #require(SQLiteStore.migrations.map(\.version).max())
        #expect(PostgresStore.migrations.map(\.version) == SQLiteStore.migrations.map(\.version))
        let again = try await fixture.store.migrate()
        #expect(again == SchemaStatus(version: latest, appliedNow: []))
        let reopened = try await fixture.reopen()
        #expect(try await reopened.generation() == 0)
        #expect(try await reopened.migrate() == SchemaStatus(version: latest, appliedNow: []))

        // A fresh database gets every step, in order, once, even with two instances migrating at once.
        let location = try await StoreFixture.freshLocation(kind)
        async let first = StoreFixture.open(kind, location)
        async let second = StoreFixture.open(kind, location)
        let (a, b) = try await (first, second)
        #expect(try await a.migrate() == SchemaStatus(version: latest, appliedNow: []))
        #expect(try await b.generation() == 0)
    }

    @Test(arguments: StoreKind.available)
    func aSchemaNewerThanTheBinaryIsRefused(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        try await fixture.execute("INSERT INTO schema_migrations (version, name\(kind == .sqlite ? ", applied_at_us" : "")) VALUES (99, 'from the future'\(kind == .sqlite ? ", 0" : ""))")
        let error = await #expect(throws: StoreError.self) { try await fixture.store.migrate() }
        #expect(error?.message.contains("version 99") == true, "\(String(describing: error))")
        await #expect(throws: StoreError.self) { _ = try await StoreFixture.open(kind, fixture.location) }
    }

    /// The import's time is printed, not asserted: timings belong in bench/, these machines are noisy.
    @Test(arguments: StoreKind.available)
    func tenThousandMerchantsSaveInOneTransaction(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let merchants = (0..<10_000).map { StoreFixture.merchant($0) }
        let clock = ContinuousClock()
        let elapsed = try await clock.measure { try await fixture.store.saveMerchants(merchants, secrets: []) }
        print("\(kind) saveMerchants(10_000): \(elapsed)")
        var loaded: [MerchantRecord] = []
        let readElapsed = try await clock.measure { loaded = try await fixture.store.merchants() }
        #expect(loaded.count == 10_000)
        #expect(Set(loaded.map(\.id)) == Set(merchants.map(\.id)))
        print("\(kind) merchants() of 10_000: \(readElapsed)")
    }

    @Test(arguments: StoreKind.available)
    func plantedSecretsAreStoredOnlySealed(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        var own = StoreFixture.merchant(7)
        own.apiKey = SecretOwner.merchantAPIKey(own.id, version: 1)
        let ownSecret = try fixture.sealer.seal(
            StoreFixture.plantedMerchantKey, owner: SecretOwner.merchant(own.id), credential: own.apiKey!)
        try await fixture.store.saveMerchants([own], secrets: [ownSecret])
        let contents = try await fixture.rawContents()
        for (where_, bytes) in contents {
            for needle in StoreFixture.needles {
                #expect(bytes.range(of: Data(needle.utf8)) == nil, "\(needle) found in \(where_)")
            }
        }
        // Sanity check of the search itself: a non-secret column is found in plaintext.
        #expect(contents.contains { $0.1.range(of: Data("krn:partner:global:account:test:ACC7".utf8)) != nil })
        // The sealed bytes are exactly what the vault produced: the store adds no encoding of its own.
        #expect(Set(try await fixture.store.sealedSecrets()) == Set(secrets + [ownSecret]))
    }

    @Test(arguments: StoreKind.available)
    func oddGroupNamesRoundTrip(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        var merchant = StoreFixture.merchant(1)
        merchant.groups = ["plain", "with \"quotes\"", "back\\slash", "tab\there", "ünïcødé ✓", "", "\u{1}"]
        try await fixture.store.saveMerchants([merchant], secrets: [])
        #expect(try await fixture.store.merchant(id: "m_1")?.groups == merchant.groups)
    }
}
