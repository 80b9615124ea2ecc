import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 16: `partner_overrides` and `caller_overrides` in `policies/rate-limits.yaml`, end to end over TLS: the
/// partner or caller with an override is refused at its own figure while its neighbour, at the default, is not; a
/// changed file reloads, and a malformed one is rejected while the running figures stay.
@Suite("Rate-limit overrides end to end")
struct RateLimitOverrideEndToEndTests {
    /// Defaults far above what the test sends; the two overrides admit a burst of 2 and then (at 0.01/s) nothing
    /// more while the test runs, so counts do not depend on timing.
    static let limits = """
        merchant:
          test: {default: {rate: 1000, burst: 1000}}
        partner:
          test: {default: {rate: 1000, burst: 1000}}
        partner_overrides:
          acq2: {default: {rate: 0.01, burst: 2}}
        caller: {rate: 1000, burst: 1000}
        caller_overrides:
          orders: {rate: 0.01, burst: 2}
        """

    /// Statuses of `count` reads of `merchant`'s seeded transaction (on `account`) by `caller`, and the rule named
    /// by the first refusal's `X-Ratelimit-Limit`.
    static func reads(_ gw: GatewayHarness, caller: String, merchant: String, account: String, count: Int) async throws -> (statuses: [Int], refusedBy: String?) {
        let client = gw.client()
        var statuses: [Int] = []
        var refusedBy: String?
        for _ in 0..<count {
            let response = try await client.send(
                "GET", "/v2/accounts/\(merchant)/payment/transactions/krn:payment:eu1:transaction:seed-\(account)", headers: [gw.bearer(caller)])
            statuses.append(response.status)
            if response.status == 429, refusedBy == nil {
                #expect(response.errorCode == "GATEWAY_RATE_LIMITED")
                refusedBy = response.header("X-Ratelimit-Limit")
            }
        }
        try await client.close()
        return (statuses, refusedBy)
    }

    @Test("one partner and one caller held to their own figures, their neighbours to the defaults; reloads apply and validate", .timeLimit(.minutes(3)))
    func overrides() async throws {
        try await withGateway(rateLimits: Self.limits) { gw in
            // The override of acq2 names no partner yet: allowed, and named in a warning.
            #expect(gw.logs.text.contains("rate-limit overrides name no partner or caller in the store"), "\(gw.logs.text.prefix(1500))")
            #expect(gw.logs.text.contains("partner_overrides.acq2") && !gw.logs.text.contains("caller_overrides.orders"))
            // A second test partner (the same Klarna acquirer) owning merchant m3, so that two partners of one
            // environment can be compared.
            _ = try await gw.admin.addPartner(NewPartner(
                id: "acq2", environment: .test, apiKey: Secret(GatewayHarness.acquirerKey), certificatePEM: gw.acquirer.certificatePEM,
                clientKeyPEM: Secret(gw.acquirer.privateKeyPEM), baseURL: "https://localhost:\(gw.simulator.port)", authForm: .rawKey))
            try await gw.admin.removeMerchant(id: "m3")
            try await gw.admin.addMerchant(id: "m3", partnerID: "acq2", account: GatewayHarness.accounts[2])
            try await gw.waitForReload()

            let overridden = try await Self.reads(gw, caller: "tester", merchant: "m3", account: "M3", count: 4)
            #expect(overridden.statuses == [200, 200, 429, 429], "partner acq2 at its override: \(overridden.statuses)")
            #expect(overridden.refusedBy?.contains("name=\"partner\"") == true, "\(overridden.refusedBy ?? "-")")
            let neighbour = try await Self.reads(gw, caller: "tester", merchant: "m1", account: "M1", count: 4)
            #expect(neighbour.statuses == [200, 200, 200, 200], "partner acq at the default: \(neighbour.statuses)")

            let limitedCaller = try await Self.reads(gw, caller: "orders", merchant: "m1", account: "M1", count: 4)
            #expect(limitedCaller.statuses == [200, 200, 429, 429], "caller orders at its override: \(limitedCaller.statuses)")
            #expect(limitedCaller.refusedBy?.contains("name=\"caller\"") == true, "\(limitedCaller.refusedBy ?? "-")")
            let otherCaller = try await Self.reads(gw, caller: "checkout", merchant: "m1", account: "M1", count: 4)
            #expect(otherCaller.statuses == [200, 200, 200, 200], "caller checkout at the default: \(otherCaller.statuses)")

            // A malformed override is rejected with its key named, and orders stays held.
            let path = gw.directory.appendingPathComponent("rate-limits.yaml")
            try (Self.limits + "\n  checkout: {rate: 0}\n").write(to: path, atomically: true, encoding: .utf8)
            // The rejection is counted before it is logged: wait for the line.
            try await waitUntil("the malformed override rejected, naming its key") {
                gw.logs.text.contains("reload rejected") && gw.logs.text.contains("caller_overrides.checkout: rate must be positive")
            }
            #expect(try await Self.reads(gw, caller: "orders", merchant: "m1", account: "M1", count: 1).statuses == [429])

            // Corrected, the file reloads and checkout is held to its new figure from the next call on. (Raising a
            // figure is not shown this way: the caller's GCRA state from the low figure stays until it drains.)
            let appliedBefore = gw.service.reloadCounts.applied
            try (Self.limits + "\n  checkout: {rate: 0.01, burst: 2}\n").write(to: path, atomically: true, encoding: .utf8)
            try await waitUntil("the corrected file reloaded") { gw.service.reloadCounts.applied > appliedBefore }
            let lowered = try await Self.reads(gw, caller: "checkout", merchant: "m1", account: "M1", count: 3)
            #expect(lowered.statuses == [200, 200, 429], "checkout after its override was added: \(lowered.statuses)")
            #expect(lowered.refusedBy?.contains("name=\"caller\"") == true, "\(lowered.refusedBy ?? "-")")
        }
    }
}
