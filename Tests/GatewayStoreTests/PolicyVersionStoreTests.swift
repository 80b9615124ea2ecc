import Foundation
import GatewayCore
import Testing

/// Policy versions in both stores: appended under a compare-and-set on the newest row of their kind, read newest
/// first in pages, the newest of each kind in `contents()` with the generation it bumped, a pending change-log
/// event committed only with an append that happened.
@Suite struct PolicyVersionStoreTests {
    static func row(_ kind: StoredPolicyKind, _ text: String?, by: String = "ops") -> PolicyVersion {
        PolicyVersion(
            kind: kind, version: text.map { EntityTag.hashing($0) }, yaml: text, appliedBy: by, appliedAtMicros: 1_000, comment: text == nil ? nil : "why")
    }

    @Test(arguments: StoreKind.available)
    func appendsUnderCompareAndSetAndReadsNewestFirst(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any PolicyVersionStore)
        #expect(try await store.policyVersions(.access, before: nil, limit: 10).isEmpty)
        #expect(try await fixture.store.contents().policies.isEmpty)
        let start = try await fixture.store.generation()

        // The first append expects no row; one expecting a row that is not there loses.
        #expect(try await store.appendPolicyVersion(Self.row(.access, "one"), expectingNewest: 7) == nil)
        let first = try #require(try await store.appendPolicyVersion(Self.row(.access, "one"), expectingNewest: nil))
        #expect(first.id > 0 && first.yaml == "one" && first.comment == "why")
        #expect(try await fixture.store.generation() > start, "an append is a change every instance reloads for")
        // A second writer that read before the first append loses; one that read after it wins.
        #expect(try await store.appendPolicyVersion(Self.row(.access, "two"), expectingNewest: nil) == nil)
        let second = try #require(try await store.appendPolicyVersion(Self.row(.access, "two"), expectingNewest: first.id))
        // Kinds are apart: rate limits have no row yet, whatever access has.
        let limits = try #require(try await store.appendPolicyVersion(Self.row(.rateLimits, "limits"), expectingNewest: nil))
        let back = try #require(try await store.appendPolicyVersion(Self.row(.access, nil), expectingNewest: second.id))
        #expect(back.returnsToFile && back.version == nil)

        let history = try await store.policyVersions(.access, before: nil, limit: 10)
        #expect(history.map(\.id) == [back.id, second.id, first.id])
        #expect(history.map(\.yaml) == [nil, "two", "one"])
        #expect(try await store.policyVersions(.access, before: second.id, limit: 10).map(\.id) == [first.id])
        #expect(try await store.policyVersions(.access, before: nil, limit: 1) == [back])
        let newest = try await fixture.store.contents().policies
        #expect(Set(newest) == [back, limits])
    }

    @Test(arguments: StoreKind.available)
    func aPendingEventCommitsOnlyWithAnAppend(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let store = try #require(fixture.store as? any PolicyVersionStore)
        let event = AdminEvent(timeMicros: 1, actor: "ops", action: "policies.apply", detail: "access version x")
        let lost = try await AdminEvent.$pending.withValue(event) { try await store.appendPolicyVersion(Self.row(.access, "one"), expectingNewest: 3) }
        #expect(lost == nil)
        #expect(try await fixture.store.adminEvents().isEmpty)
        let won = try await AdminEvent.$pending.withValue(event) { try await store.appendPolicyVersion(Self.row(.access, "one"), expectingNewest: nil) }
        #expect(won != nil)
        #expect(try await fixture.store.adminEvents().map(\.action) == ["policies.apply"])
    }
}
