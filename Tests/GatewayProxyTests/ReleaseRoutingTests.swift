import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 6 over real sockets: release refusals forward nothing, roll-outs and pins apply without a restart, and
/// the call record names the release.
@Suite("Release routing end to end")
struct ReleaseRoutingTests {
    static let disputes = "/v2/accounts/m2/payment/disputes"  // listDisputes: introduced in r5
    static let releases = try! GatewayHarness.repositoryFile("policies/releases.yaml").replacingOccurrences(
        of: "  - {id: r9,", with: "  - {id: r10, name: Release 10, test: \"2099-01-01\", live: \"2099-02-01\", api_major: v2}\n  - {id: r9,")
        .replacingOccurrences(of: "groups: {}", with: "groups: {eu: r4}")

    var policy: ReleasePolicy { get throws { try ConfigLoader.decode(ReleasePolicy.self, yaml: Self.releases, source: "test") } }

    @Test("an operation newer than the merchant's release is refused, naming the release that adds it; nothing is sent")
    func notInRelease() async throws {
        let releases = try GatewayHarness.repositoryFile("policies/releases.yaml")
        try await withGateway(releases: releases) { gw in
            try await gw.admin.pinMerchant(id: "m2", release: "r4", policy: try ConfigLoader.decode(ReleasePolicy.self, yaml: releases, source: "t"))
            try await gw.waitForReload()
            try await gw.clearReceived()
            let client = gw.client()
            let refused = try await client.send("GET", Self.disputes, headers: [gw.bearer("tester")])
            #expect(refused.status == 404)
            #expect(refused.errorCode == "GATEWAY_OPERATION_NOT_IN_RELEASE")
            #expect(refused.json["error_message"]?.stringValue?.contains("r5") == true)
            #expect(try await gw.received().isEmpty)
            #expect(gw.logs.text.contains("release=r4"))
            // Unpinned, the merchant follows the newest release (this calendar has no group pins).
            try await gw.admin.pinMerchant(id: "m2", release: nil, policy: try ConfigLoader.decode(ReleasePolicy.self, yaml: releases, source: "t"))
            try await gw.waitForReload()
            #expect(try await client.send("GET", Self.disputes, headers: [gw.bearer("tester")]).status == 200)
            try await client.close()
        }
    }

    @Test("a test-only operation for a live merchant is 403 and a release not yet available is 409; nothing is sent")
    func availability() async throws {
        try await withGateway(releases: Self.releases) { gw in
            try await gw.clearReceived()
            let client = gw.client()
            let testOnly = try await client.send("POST", "/v2/accounts/m_live/interoperability/test-tokens", headers: [gw.bearer("tester"), ("Content-Type", "application/json")], body: Array("{}".utf8))
            #expect(testOnly.status == 403)
            #expect(testOnly.errorCode == "GATEWAY_OPERATION_NOT_AVAILABLE")
            let early = try await client.send("GET", "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1", headers: [gw.bearer("tester"), ("Klarna-Gateway-Release", "r10")])
            #expect(early.status == 409)
            #expect(early.errorCode == "GATEWAY_RELEASE_NOT_AVAILABLE")
            // Without release-override, the header is refused.
            let forbidden = try await client.send("GET", "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1", headers: [gw.bearer("checkout"), ("Klarna-Gateway-Release", "r8")])
            #expect(forbidden.status == 403)
            #expect(try await gw.received().isEmpty)
            // The CLI's admin layer refuses pinning a live merchant to a release not yet live.
            await #expect(throws: (any Error).self) { try await gw.admin.pinMerchant(id: "m_live", release: "r10", policy: try self.policy) }
            try await client.close()
        }
    }

    @Test("roll-outs move merchants without a restart, pinned merchants stay, rollback returns them")
    func rollouts() async throws {
        try await withGateway(releases: Self.releases) { gw in
            let policy = try self.policy
            let client = gw.client()
            func disputes(_ merchant: String) async throws -> Int {
                try await client.send("GET", "/v2/accounts/\(merchant)/payment/disputes", headers: [gw.bearer("tester")]).status
            }
            // m2 and m4 are in group eu, pinned to r4 by the calendar: disputes (r5) are refused.
            #expect(try await disputes("m2") == 404)
            // m1 follows the latest release; pin m3 to r9 so a roll-out cannot move it.
            try await gw.admin.pinMerchant(id: "m3", release: "r9", policy: policy)
            #expect(try await gw.admin.rollOut(release: "r5", percent: 100, group: "eu", policy: policy) == 2)
            try await gw.admin.rollOut(release: "r3", percent: 100, group: nil, policy: policy)
            try await gw.waitForReload()
            #expect(try await disputes("m2") == 200)   // r5 roll-out beats the group pin
            #expect(try await disputes("m1") == 404)   // r3 roll-out: disputes not yet
            #expect(try await disputes("m3") == 200)   // pinned to r9: unaffected
            try await gw.admin.rollBack(release: "r3")
            try await gw.admin.rollBack(release: "r5")
            try await gw.waitForReload()
            #expect(try await disputes("m1") == 200)
            #expect(try await disputes("m2") == 404)
            // Every release change is in the change log, in order.
            #expect(try await gw.admin.store.adminEvents().filter(\.isReleaseChange).map(\.action) == [
                "merchants.release", "releases.rollout", "releases.rollout", "releases.rollback", "releases.rollback",
            ])
            let summaries = try await gw.admin.releaseSummaries(policy: policy)
            #expect(summaries.first { $0.release.id == "r4" }?.merchants == 2)
            try await client.close()
        }
    }
}
