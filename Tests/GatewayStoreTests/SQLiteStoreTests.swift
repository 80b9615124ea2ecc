import Foundation
import GatewayCore
import GatewayStore
import GatewayVault
import Testing

@Suite struct SQLiteStoreTests {
    @Test func partnersRoundTripWithTheirSecrets() async throws {
        let fixture = try await StoreFixture()
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
        let sealed = try fixture.sealer.seal(Secret("klarna_test_api_second"), owner: "partner:acq_test", credential: rotated.apiKey)
        try await fixture.store.savePartner(rotated, secrets: [sealed])
        #expect(try await fixture.store.partners() == [rotated])
        #expect(try await fixture.store.sealedSecrets().count == 3)
    }

    @Test func merchantsRoundTripAndDelete() async throws {
        let fixture = try await StoreFixture()
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

        #expect(try await fixture.store.deleteMerchant(id: "m_2"))
        #expect(try await fixture.store.deleteMerchant(id: "m_2") == false)
        #expect(try await fixture.store.merchants() == [suspended])
        #expect(try await fixture.store.sealedSecrets().allSatisfy { $0.owner != "merchant:m_2" })
    }

    @Test func oneAccountBelongsToOneMerchant() async throws {
        let fixture = try await StoreFixture()
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        try await fixture.store.saveMerchants([StoreFixture.merchant(1)], secrets: [])
        var clash = StoreFixture.merchant(2)
        clash.account = StoreFixture.merchant(1).account
        await #expect(throws: (any Error).self) { try await fixture.store.saveMerchants([clash], secrets: []) }
        #expect(try await fixture.store.merchants().map(\.id) == ["m_1"])
    }

    @Test func merchantsNeedAnExistingPartner() async throws {
        let fixture = try await StoreFixture()
        await #expect(throws: (any Error).self) {
            try await fixture.store.saveMerchants([StoreFixture.merchant(1, partner: "ghost")], secrets: [])
        }
    }

    @Test func callersRoundTrip() async throws {
        let fixture = try await StoreFixture()
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

    @Test func replacingSealedSecretsReseals() async throws {
        let fixture = try await StoreFixture()
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

    @Test func everyWriteBumpsTheGenerationSeenByAnotherInstance() async throws {
        let fixture = try await StoreFixture()
        let other = try await SQLiteStore.open(path: fixture.path)
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
        // The second instance writes too, and the first sees it.
        try await other.saveMerchants([StoreFixture.merchant(5)], secrets: [])
        expected += 1
        #expect(try await fixture.store.generation() == expected)
        let contents = try await fixture.store.contents()
        #expect(contents.generation == expected)
        #expect(contents.merchants.map(\.id) == ["m_5"])
    }

    @Test func migratingTwiceIsHarmless() async throws {
        let fixture = try await StoreFixture()
        try await fixture.store.migrate()
        let reopened = try await SQLiteStore.open(path: fixture.path)
        #expect(try await reopened.generation() == 0)
    }

    @Test func filesAreOwnerOnly() async throws {
        let fixture = try await StoreFixture()
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let files = fixture.allBytes().map(\.0)
        #expect(files.count == 3, "expected the database, -wal and -shm files: \(files)")
        for file in files { #expect(try fixture.mode(file) == 0o600, "\(file)") }
    }

    /// The import's time is printed, not asserted: timings belong in bench/, these machines are noisy.
    @Test func tenThousandMerchantsSaveInOneTransaction() async throws {
        let fixture = try await StoreFixture()
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let merchants = (0..<10_000).map { StoreFixture.merchant($0) }
        let clock = ContinuousClock()
        let elapsed = try await clock.measure { try await fixture.store.saveMerchants(merchants, secrets: []) }
        print("saveMerchants(10_000): \(elapsed)")
        var count = 0
        let readElapsed = try await clock.measure { count = try await fixture.store.merchants().count }
        #expect(count == 10_000)
        print("merchants() of 10_000: \(readElapsed)")
    }

    @Test func plantedSecretsNeverReachTheDisk() async throws {
        let fixture = try await StoreFixture()
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        var own = StoreFixture.merchant(7)
        own.apiKey = SecretOwner.merchantAPIKey(own.id, version: 1)
        let ownSecret = try fixture.sealer.seal(
            StoreFixture.plantedMerchantKey, owner: SecretOwner.merchant(own.id), credential: own.apiKey!)
        try await fixture.store.saveMerchants([own], secrets: [ownSecret])
        let needles = ["PLANTEDSECRET", "PLANTEDMERCHANTKEY", "PLANTEDCLIENTKEY", StoreFixture.plantedAPIKey.exposedValue]
        let files = fixture.allBytes()
        #expect(files.contains { $0.0.hasSuffix("-wal") && !$0.1.isEmpty }, "the WAL should hold the recent writes")
        for (file, bytes) in files {
            for needle in needles {
                #expect(bytes.range(of: Data(needle.utf8)) == nil, "\(needle) found in \(file)")
            }
        }
        // Sanity check of the search itself: a non-secret column is found in plaintext.
        #expect(files.contains { $0.1.range(of: Data("krn:partner:global:account:test:ACC7".utf8)) != nil })
    }
}

@Suite struct GroupsEncodingTests {
    @Test func oddGroupNamesRoundTrip() async throws {
        let fixture = try await StoreFixture()
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        var merchant = StoreFixture.merchant(1)
        merchant.groups = ["plain", "with \"quotes\"", "back\\slash", "tab\there", "ünïcødé ✓", "", "\u{1}"]
        try await fixture.store.saveMerchants([merchant], secrets: [])
        #expect(try await fixture.store.merchant(id: "m_1")?.groups == merchant.groups)
    }
}
