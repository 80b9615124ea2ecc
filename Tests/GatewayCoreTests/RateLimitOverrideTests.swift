import GatewayCore
import Testing

/// Issue 16: partner- and caller-level figures overridden per partner id and per caller id, resolved when the
/// snapshot is built; the limiter decides the same from the resolved figures as from the policy.
@Suite("Rate-limit overrides per partner and per caller")
struct RateLimitOverrideTests {
    static let category = "payment-transaction-management"
    static let policy = RateLimitPolicy(
        partner: [.test: CategoryLimits(default: LimitSpec(rate: 100)), .live: CategoryLimits(default: LimitSpec(rate: 1000))],
        caller: LimitSpec(rate: 100),
        partnerOverrides: ["acq": CategoryLimits(default: LimitSpec(rate: 3, burst: 3))],
        callerOverrides: ["orders": LimitSpec(rate: 2, burst: 2)])

    static func subject(caller: String, partner: String, merchant: String, resolved: ResolvedRateLimits? = nil) -> RateLimitSubject {
        RateLimitSubject(
            callerID: caller, merchantID: merchant, merchantGroups: [], partnerID: partner, environment: .test, category: category,
            resolved: resolved)
    }

    /// Calls admitted out of `count` at one instant.
    static func admitted(_ subject: RateLimitSubject, count: Int) -> Int {
        let limiter = RateLimiter()
        return (0..<count).filter { _ in limiter.decide(subject, policy: policy, now: 0) == .admit }.count
    }

    @Test("an override replaces its partner's or caller's figure; every other partner and caller keeps the default")
    func overridesByID() {
        #expect(Self.policy.partnerLimits(partnerID: "acq", environment: .test)?.default == LimitSpec(rate: 3, burst: 3))
        #expect(Self.policy.partnerLimits(partnerID: "acq_other", environment: .test)?.default == LimitSpec(rate: 100))
        #expect(Self.policy.partnerLimits(partnerID: "acq_other", environment: .live)?.default == LimitSpec(rate: 1000))
        #expect(Self.policy.callerLimit(callerID: "orders") == LimitSpec(rate: 2, burst: 2))
        #expect(Self.policy.callerLimit(callerID: "checkout") == LimitSpec(rate: 100))
        #expect(Self.admitted(Self.subject(caller: "checkout", partner: "acq", merchant: "m1"), count: 10) == 3)
        #expect(Self.admitted(Self.subject(caller: "checkout", partner: "acq_other", merchant: "m1"), count: 10) == 10)
        #expect(Self.admitted(Self.subject(caller: "orders", partner: "acq_other", merchant: "m1"), count: 10) == 2)
    }

    @Test("overrides naming no partner or caller of the store are listed, for a warning")
    func overridesNamingNone() {
        #expect(Self.policy.overridesNamingNone(partners: ["acq"], callers: ["orders"]).isEmpty)
        #expect(Self.policy.overridesNamingNone(partners: ["acq_other"], callers: []) == ["partner_overrides.acq", "caller_overrides.orders"])
    }

    @Test("the snapshot resolves each partner's and caller's figures once; the pipeline hands them to the limiter")
    func resolvedBySnapshot() throws {
        let snapshot = Fixtures.snapshot(rateLimits: Self.policy)
        #expect(snapshot.partners["acq"]?.rateLimits?.default == LimitSpec(rate: 3, burst: 3))
        #expect(snapshot.partners["acq_live"]?.rateLimits?.default == LimitSpec(rate: 1000))
        let orders = try #require(snapshot.callersByTokenID[Fixtures.tokens["orders"]!.id])
        #expect(orders.rateLimit == LimitSpec(rate: 2, burst: 2))
        let checkout = try #require(snapshot.callersByTokenID[Fixtures.tokens["checkout"]!.id])
        #expect(checkout.rateLimit == LimitSpec(rate: 100))

        let plan = try RequestPipeline().plan(
            IngressRequest(
                method: "GET", target: "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:6debe89e",
                headers: HeaderList([("Host", "gw"), Fixtures.bearer("orders")]), clientCertificateFingerprint: nil),
            requestID: "3f2a6c1e-0000-4000-8000-000000000002", snapshot: snapshot, today: "2026-11-28").get()
        #expect(plan.callerRateLimit == LimitSpec(rate: 2, burst: 2))
        #expect(plan.target.partner.rateLimits?.default == LimitSpec(rate: 3, burst: 3))

        // The resolved figures decide exactly as the policy does.
        let resolved = ResolvedRateLimits(partner: plan.target.partner.rateLimits, caller: plan.callerRateLimit)
        #expect(Self.admitted(Self.subject(caller: "orders", partner: "acq", merchant: "m1", resolved: resolved), count: 10) == 2)
        // A subject resolved to no limits is not limited by the policy's overrides behind its back.
        let unlimited = ResolvedRateLimits(partner: nil, caller: nil)
        #expect(Self.admitted(Self.subject(caller: "orders", partner: "acq", merchant: "m1", resolved: unlimited), count: 10) == 10)
    }
}
