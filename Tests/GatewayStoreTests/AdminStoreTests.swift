import Foundation
import GatewayCore
import Testing

/// What the admin API keeps and reads in both stores: admin accounts, merchant pages, conditional merchant writes.
@Suite struct AdminStoreTests {
    @Test(arguments: StoreKind.available)
    func adminAccountsRoundTripByNameAndTokenID(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any AdminAccountStore)
        let generation = try await fixture.store.generation()
        let ops = AdminAccount(name: "ops", role: .operator, tokenID: "00000000000000aa", tokenHash: String(repeating: "ab", count: 32), createdMicros: 1)
        let sec = AdminAccount(name: "alice", role: .security, tokenID: "00000000000000bb", tokenHash: String(repeating: "cd", count: 32), createdMicros: 2)
        try await store.insertAdminAccount(ops)
        try await store.insertAdminAccount(sec)
        #expect(try await store.adminAccounts() == [sec, ops])
        #expect(try await store.adminAccount(tokenID: "00000000000000bb") == sec)
        #expect(try await store.adminAccount(tokenID: "00000000000000cc") == nil)
        // A name is taken once.
        await #expect(throws: (any Error).self) { try await store.insertAdminAccount(ops) }
        #expect(try await store.deleteAdminAccount(name: "ops"))
        #expect(try await !store.deleteAdminAccount(name: "ops"))
        #expect(try await store.adminAccounts() == [sec])
        // Nothing the data plane serves changed.
        #expect(try await fixture.store.generation() == generation)
    }

    @Test(arguments: StoreKind.available)
    func adminAccountsHoldOneCertificateEach(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any AdminAccountStore)
        // Generated, not written out: no key-shaped literal in the source.
        func randomHex() -> String { (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        let fingerprint = randomHex()
        let holder = AdminAccount(
            name: "night", role: .viewer, tokenID: "00000000000000aa", tokenHash: randomHex(), createdMicros: 1, certificateFingerprint: fingerprint)
        let tokenOnly = AdminAccount(name: "day", role: .operator, tokenID: "00000000000000bb", tokenHash: randomHex(), createdMicros: 2)
        let other = AdminAccount(name: "dusk", role: .security, tokenID: "00000000000000cc", tokenHash: randomHex(), createdMicros: 3)
        try await store.insertAdminAccount(holder)
        try await store.insertAdminAccount(tokenOnly)
        try await store.insertAdminAccount(other)
        #expect(try await store.adminAccount(certificateFingerprint: fingerprint) == holder)
        #expect(try await store.adminAccount(tokenID: "00000000000000aa")?.certificateFingerprint == fingerprint)
        #expect(try await store.adminAccount(certificateFingerprint: randomHex()) == nil)
        #expect(try await store.adminAccounts().map(\.certificateFingerprint) == [nil, nil, fingerprint])
        // A certificate names one account, while any number hold none.
        var twin = other
        twin.name = "twin"
        twin.tokenID = "00000000000000dd"
        twin.certificateFingerprint = fingerprint
        await #expect(throws: (any Error).self) { try await store.insertAdminAccount(twin) }
        #expect(try await store.deleteAdminAccount(name: "night"))
        #expect(try await store.adminAccount(certificateFingerprint: fingerprint) == nil)
        try await store.insertAdminAccount(twin)
        #expect(try await store.adminAccount(certificateFingerprint: fingerprint) == twin)
    }

    @Test(arguments: StoreKind.available)
    func merchantPagesFollowTheCursorAndTheSearch(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        try await fixture.store.saveMerchants((1...30).map { StoreFixture.merchant($0) }, secrets: [])
        let paging = try #require(fixture.store as? any MerchantPaging)
        let all = try await fixture.store.merchants().map(\.id)
        var walked: [String] = []
        var cursor: String?
        while true {
            let page = try await paging.merchantPage(after: cursor, matching: nil, limit: 7)
            walked += page.map(\.id)
            guard page.count == 7 else { break }
            cursor = page.last?.id
        }
        #expect(walked == all)
        #expect(try await paging.merchantPage(after: nil, matching: "M_2", limit: 50).map(\.id) == ["m_2", "m_20", "m_21", "m_22", "m_23", "m_24", "m_25", "m_26", "m_27", "m_28", "m_29"])
        #expect(try await paging.merchantPage(after: "m_25", matching: "m_2", limit: 2).map(\.id) == ["m_26", "m_27"])
        #expect(try await paging.merchantPage(after: nil, matching: "_", limit: 50).isEmpty == false)
        #expect(try await paging.merchantPage(after: nil, matching: "%", limit: 50).isEmpty)
    }

    @Test(arguments: StoreKind.available)
    func aMerchantIsReplacedOnlyWhileItIsAsRead(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let original = StoreFixture.merchant(1)
        try await fixture.store.saveMerchants([original], secrets: [])
        let paging = try #require(fixture.store as? any MerchantPaging)
        var suspended = original
        suspended.status = .suspended
        let generation = try await fixture.store.generation()
        #expect(try await paging.replaceMerchant(original, with: suspended))
        #expect(try await fixture.store.merchant(id: original.id) == suspended)
        #expect(try await fixture.store.generation() > generation)
        // A second writer that read the original loses.
        var pinned = original
        pinned.release = "v2/r5"
        #expect(try await !paging.replaceMerchant(original, with: pinned))
        #expect(try await fixture.store.merchant(id: original.id) == suspended)
        #expect(suspended.etag != original.etag)
    }
}
