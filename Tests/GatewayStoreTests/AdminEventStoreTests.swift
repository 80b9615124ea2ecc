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
                group.addTask { ("a", stored.id, try await store.claimAdminEvent(id: stored.id, node: "a", atMicros: 1)) }
                group.addTask { ("b", stored.id, try await other.claimAdminEvent(id: stored.id, node: "b", atMicros: 1)) }
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

    @Test(arguments: StoreKind.available)
    func aClaimLeftTooLongIsTakenOverByExactlyOneOtherNode(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any AdminEventAuditing)
        let other = try #require(try await fixture.reopen() as? any AdminEventAuditing)
        let now = UTCTime.nowMicros()
        let hourAgo = now - 3_600_000_000
        let cutoff = now - 300_000_000
        for index in 1...23 { try await fixture.store.appendAdminEvent(Self.event("callers.revoke", "c\(index)")) }
        let events = try await store.unclaimedAdminEvents(limit: 100)
        let dead = Array(events.prefix(20))
        let (live, own, old) = (events[20], events[21], events[22])
        // Claimed an hour ago by a node that died; just now by a live node; an hour ago by "b" itself; and by a binary
        // older than schema version 9, which dates no claim (its event's own time, in 2023, counts).
        for stored in dead { #expect(try await store.claimAdminEvent(id: stored.id, node: "dead", atMicros: hourAgo)) }
        #expect(try await store.claimAdminEvent(id: live.id, node: "live", atMicros: now))
        #expect(try await store.claimAdminEvent(id: own.id, node: "b", atMicros: hourAgo))
        try await fixture.execute("UPDATE admin_events SET audited_by = 'old-binary' WHERE id = \(old.id)")

        let staleForB = try await store.staleAdminEventClaims(claimedBefore: cutoff, excluding: "b", limit: 100)
        #expect(staleForB.map(\.id) == dead.map(\.id) + [old.id])
        #expect(staleForB.map(\.claimedBy) == Array(repeating: "dead", count: 20) + ["old-binary"])
        #expect(staleForB.map(\.event) == dead.map(\.event) + [old.event])
        #expect(try await store.staleAdminEventClaims(claimedBefore: cutoff, excluding: "c", limit: 100).map(\.id) == dead.map(\.id) + [own.id, old.id])
        #expect(try await store.staleAdminEventClaims(claimedBefore: cutoff, excluding: "b", limit: 3).map(\.id) == dead.prefix(3).map(\.id))
        // A fresh claim is not taken over, even when asked for by id; nor one named with another claimant.
        #expect(try await !store.takeOverAdminEvent(id: live.id, from: "live", node: "b", claimedBefore: cutoff, atMicros: now))
        #expect(try await !store.takeOverAdminEvent(id: old.id, from: "dead", node: "b", claimedBefore: cutoff, atMicros: now))
        #expect(try await store.takeOverAdminEvent(id: old.id, from: "old-binary", node: "b", claimedBefore: cutoff, atMicros: now))

        // Two nodes race to take over each of the dead node's claims: exactly one takes each.
        let wins = try await withThrowingTaskGroup(of: (String, Int64, Bool).self) { group in
            for stored in dead {
                group.addTask { ("b", stored.id, try await store.takeOverAdminEvent(id: stored.id, from: "dead", node: "b", claimedBefore: cutoff, atMicros: now)) }
                group.addTask { ("c", stored.id, try await other.takeOverAdminEvent(id: stored.id, from: "dead", node: "c", claimedBefore: cutoff, atMicros: now)) }
            }
            var wins: [Int64: [String]] = [:]
            for try await (node, id, won) in group where won { wins[id, default: []].append(node) }
            return wins
        }
        #expect(dead.allSatisfy { wins[$0.id]?.count == 1 }, "\(wins)")
        // Taken over, a claim is fresh and its taker's: stale to nobody, and the dead node, come back, cannot finish it.
        #expect(try await store.staleAdminEventClaims(claimedBefore: cutoff, excluding: "d", limit: 100).map(\.id) == [own.id])
        for stored in dead { try await store.finishAdminEvent(id: stored.id, node: "dead", atMicros: now) }
        #expect(try await store.unfinishedAdminEvents(claimedBy: "dead").isEmpty)
        let ofB = try await store.unfinishedAdminEvents(claimedBy: "b")
        let ofC = try await other.unfinishedAdminEvents(claimedBy: "c")
        #expect(Set(ofB.map(\.id)) == Set(wins.filter { $0.value == ["b"] }.keys).union([own.id, old.id]))
        #expect(Set(ofC.map(\.id)) == Set(wins.filter { $0.value == ["c"] }.keys))
        // A claim finished meanwhile is not taken over.
        try await store.finishAdminEvent(id: own.id, node: "b", atMicros: now)
        #expect(try await !other.takeOverAdminEvent(id: own.id, from: "b", node: "c", claimedBefore: cutoff, atMicros: now))
    }

    @Test(arguments: StoreKind.available)
    func claimsMadeBeforeSchemaNineAreDatedByTheStep(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any AdminEventAuditing)
        for index in 1...2 { try await fixture.store.appendAdminEvent(Self.event("callers.revoke", "c\(index)")) }
        let events = try await store.unclaimedAdminEvents(limit: 10)
        #expect(try await store.claimAdminEvent(id: events[0].id, node: "old", atMicros: 1))
        // The store as version 8 left it: claims without a time.
        try await fixture.execute("ALTER TABLE admin_events DROP COLUMN claimed_at_us")
        try await fixture.execute("DELETE FROM schema_migrations WHERE version = 9")
        let before = UTCTime.nowMicros()
        #expect(try await fixture.store.migrate().appliedNow == [9])
        let after = UTCTime.nowMicros()
        // The claim counts from the step, not from its event (2023): its node keeps the whole bound from the upgrade.
        #expect(try await store.staleAdminEventClaims(claimedBefore: before - 1_000_000, excluding: "new", limit: 10).isEmpty)
        #expect(try await store.staleAdminEventClaims(claimedBefore: after + 1_000_000, excluding: "new", limit: 10).map(\.id) == [events[0].id])
        #expect(try await store.unclaimedAdminEvents(limit: 10).map(\.id) == [events[1].id])
    }
}
