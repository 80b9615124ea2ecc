import GatewayCore
import Testing

/// `RateLimiter.throttled`, the admin API's "who is throttled now": the keys decisions refused or delayed, and
/// Klarna's holds, at an injected clock.
@Suite("Rate limits: who is throttled, for the admin API")
struct RateLimiterThrottledTests {
    static let second: Int64 = 1_000_000_000
    let m1 = RateLimitSubject(callerID: "checkout", merchantID: "m1", merchantGroups: [], partnerID: "acq", environment: .test, category: "payment-transaction-management")
    let policy = RateLimitPolicy(merchant: [.test: CategoryLimits(default: LimitSpec(rate: 10, burst: 2))], caller: LimitSpec(rate: 1, burst: 100))

    func merchantKey(_ id: String) -> RateLimitKey { RateLimitKey(rule: .merchant, first: id, second: "payment-transaction-management") }

    @Test("admitted calls mark nothing; a refusal lists the key with its rule, room and wait until it passes; the window forgets it")
    func refusals() {
        let limiter = RateLimiter()
        for _ in 0..<2 { #expect(limiter.decide(m1, policy: policy, now: 0) == .admit) }
        #expect(limiter.throttled(now: 0).keys.isEmpty, "admissions are not throttling")
        guard case .refuse(_, rule: .merchant) = limiter.decide(m1, policy: policy, now: 0) else {
            Issue.record("the third call at one instant exceeds the burst of 2")
            return
        }
        _ = limiter.decide(m1, policy: policy, now: Self.second / 20)
        let (keys, complete) = limiter.throttled(now: Self.second / 20)
        #expect(complete)
        #expect(keys.count == 1)
        let key = keys.first
        #expect(key?.key == merchantKey("m1"))
        #expect(key?.limit == GCRA(rate: 10, burst: 2))
        #expect(key?.refused == 2 && key?.delayed == 0)
        #expect(key?.remaining == 0)
        #expect(key?.throttledNow == true)
        // Two calls at 0 put the TAT at 200 ms; with a burst of 2 the next conforms at 100 ms, 50 ms from now.
        #expect(key?.retryAfter == Self.second / 20)
        #expect(key?.sinceLast == 0)
        // Room again: still listed (recently refused), no longer throttled now; after the window, gone.
        let later = limiter.throttled(now: 10 * Self.second).keys.first
        #expect(later?.throttledNow == false && later?.remaining == 2 && later?.refused == 2)
        #expect(later?.sinceLast == 10 * Self.second - Self.second / 20)
        #expect(limiter.throttled(now: RateLimiter.throttleWindow + Self.second).keys.isEmpty)
        limiter.sweep(now: RateLimiter.throttleWindow + Self.second)
        #expect(limiter.throttled(now: 0).keys.isEmpty, "the sweep forgot the mark")
    }

    @Test("a delay (shaping) is counted as delayed; a hold learned from Klarna lists its key without a limit")
    func delaysAndHolds() {
        let limiter = RateLimiter()
        let shaping = RateLimitPolicy(
            merchant: [.test: CategoryLimits(default: LimitSpec(rate: 10, burst: 1))], options: ["merchant": RuleOptions(maxDelayMs: 500)])
        #expect(limiter.decide(m1, policy: shaping, now: 0) == .admit)
        #expect(limiter.decide(m1, policy: shaping, now: 0) == .delay(nanoseconds: Self.second / 10))
        var m2 = m1
        m2.merchantID = "m2"
        limiter.hold(m2, until: 3 * Self.second)
        let keys = Dictionary(uniqueKeysWithValues: limiter.throttled(now: 0).keys.map { ($0.key.first, $0) })
        #expect(keys["m1"]?.delayed == 1 && keys["m1"]?.refused == 0)
        #expect(keys["m1"]?.retryAfter == 2 * Self.second / 10)
        #expect(keys["m2"]?.limit == nil && keys["m2"]?.heldFor == 3 * Self.second && keys["m2"]?.retryAfter == 3 * Self.second)
        #expect(keys["m2"]?.sinceLast == nil && keys["m2"]?.throttledNow == true)
        #expect(limiter.throttled(now: 3 * Self.second).keys.map(\.key.first) == ["m1"], "an expired hold is not listed")
    }

    @Test("past 10,000 keys throttled the list says it is incomplete, until the window has passed")
    func bounded() {
        let limiter = RateLimiter()
        let tight = RateLimitPolicy(merchant: [.test: CategoryLimits(default: LimitSpec(rate: 1, burst: 1))])
        for number in 0...RateLimiter.maxThrottleMarks {
            var subject = m1
            subject.merchantID = "m\(number)"
            _ = limiter.decide(subject, policy: tight, now: 0)
            _ = limiter.decide(subject, policy: tight, now: 0)
        }
        let (keys, complete) = limiter.throttled(now: 0)
        #expect(keys.count == RateLimiter.maxThrottleMarks)
        #expect(!complete)
        #expect(limiter.throttled(now: RateLimiter.throttleWindow + 1).complete)
    }

    @Test("in cluster mode a refusal lists its key with the wait the decision saw; room is not known locally")
    func clustered() {
        let limiter = RateLimiter(cluster: ClusterLimits.Settings())
        limiter.hold(m1, until: Self.second)
        guard case .refuse = limiter.decide(m1, policy: policy, now: 0) else {
            Issue.record("a held key is refused")
            return
        }
        let key = limiter.throttled(now: 0).keys.first
        #expect(key?.remaining == nil && key?.refused == 1 && key?.retryAfter == Self.second && key?.heldFor == Self.second)
    }
}
