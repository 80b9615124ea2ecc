import Foundation
import GatewayCore
import Testing

/// The change log as running nodes audit it, in both stores: a pending event commits with its write (or not at
/// all), one claimant of several wins an event, and a claim stays the claimant's until it finishes it.
@Suite struct AdminEventStoreTests {
    static func event(_ action: String, _ detail: String) -> AdminEvent {
        AdminEvent(timeMicros: 1_700_000_000_000_000, actor: "ops", action: action, detail: detail)
    }

    @Test(arguments: StoreKind.available)
    func aPendingEventCommitsWithItsWriteOnly(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any AdminEventAuditing)
        let (partner, secrets) = try fixture.partner()
        try await AdminEvent.$pending.withValue(Self.event("partners.add", "acq_test")) {
            try await fixture.store.savePartner(partner, secrets: secrets)
        }
        try await fixture.store.saveMerchants([StoreFixture.merchant(1)], secrets: [])
        // A write that fails (the account is another merchant's) and one that changes nothing append nothing.
        var taken = StoreFixture.merchant(2)
        taken.account = StoreFixture.merchant(1).account
        await #expect(throws: (any Error).self) {
            try await AdminEvent.$pending.withValue(Self.event("merchants.add", "m_2")) { try await fixture.store.saveMerchants([taken], secrets: []) }
        }
        let removed = try await AdminEvent.$pending.withValue(Self.event("merchants.remove", "none")) { try await fixture.store.deleteMerchant(id: "none") }
        #expect(!removed)
        // A partner's removal refused (a merchant uses it) or finding none is no change either.
        let refused = try await AdminEvent.$pending.withValue(Self.event("partners.remove", "in use")) { try await fixture.store.deletePartner(id: "acq_test") }
        #expect(refused == .inUse(merchants: 1))
        let absent = try await AdminEvent.$pending.withValue(Self.event("partners.remove", "absent")) { try await fixture.store.deletePartner(id: "ghost") }
        #expect(absent == .notFound)
        try await AdminEvent.$pending.withValue(Self.event("merchants.remove", "m_1")) { _ = try await fixture.store.deleteMerchant(id: "m_1") }
        let deleted = try await AdminEvent.$pending.withValue(Self.event("partners.remove", "acq_test")) { try await fixture.store.deletePartner(id: "acq_test") }
        #expect(deleted == .deleted)
        // One the admin API audited itself is stored as finished, for the release history only.
        try await fixture.store.appendAdminEvent(AdminEvent(timeMicros: 1, actor: "admin:ops", action: "releases.rollout", detail: "r9 at 5%", auditedBy: AdminEvent.auditedByAdminAPI))

        #expect(try await fixture.store.adminEvents().map(\.action) == ["partners.add", "merchants.remove", "partners.remove", "releases.rollout"])
        #expect(try await store.unclaimedAdminEvents(limit: 10).map(\.event.detail) == ["acq_test", "m_1", "acq_test"])
        #expect(try await store.unclaimedAdminEvents(limit: 1).map(\.event.detail) == ["acq_test"])
    }

    @Test(arguments: StoreKind.available)
    func ofSeveralClaimantsExactlyOneWinsAndKeepsItUntilFinished(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any AdminEventAuditing)
        let other = try #require(try await fixture.reopen() as? any AdminEventAuditing)
        for index in 1...20 { try await fixture.store.appendAdminEvent(Self.event("callers.revoke", "c\(index)")) }
        let events = try await store.unclaimedAdminEvents(limit: 100)
        #expect(events.count == 20)
        // Two instances race for every event at once.
        let wins = try await withThrowingTaskGroup(of: (String, Int64, Bool).self) { group in
            for stored in events {
                group.addTask { ("a", stored.id, try await store.claimAdminEvent(id: stored.id, node: "a")) }
                group.addTask { ("b", stored.id, try await other.claimAdminEvent(id: stored.id, node: "b")) }
            }
            var wins: [Int64: [String]] = [:]
            for try await (node, id, won) in group where won { wins[id, default: []].append(node) }
            return wins
        }
        #expect(events.allSatisfy { wins[$0.id]?.count == 1 }, "\(wins)")
        #expect(try await store.unclaimedAdminEvents(limit: 100).isEmpty)
        let ofA = try await store.unfinishedAdminEvents(claimedBy: "a")
        let ofB = try await other.unfinishedAdminEvents(claimedBy: "b")
        #expect(Set(ofA.map(\.id)) == Set(wins.filter { $0.value == ["a"] }.keys))
        #expect(ofA.count + ofB.count == 20)
        // Finishing is the claimant's: another node's finish leaves the claim open.
        for stored in ofA { try await other.finishAdminEvent(id: stored.id, node: "b", atMicros: 5) }
        #expect(try await store.unfinishedAdminEvents(claimedBy: "a").count == ofA.count)
        for stored in ofA { try await store.finishAdminEvent(id: stored.id, node: "a", atMicros: 5) }
        for stored in ofB { try await other.finishAdminEvent(id: stored.id, node: "b", atMicros: 5) }
        #expect(try await store.unfinishedAdminEvents(claimedBy: "a").isEmpty)
        #expect(try await fixture.store.adminEvents().filter { $0.auditedBy == "a" }.count == ofA.count)
        #expect(try await fixture.store.adminEvents().allSatisfy { $0.auditedBy != nil })
    }
}
