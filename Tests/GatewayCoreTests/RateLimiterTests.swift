import Foundation
import GatewayCore
import Testing

@Suite("Rate limits (GCRA, injected clock)")
struct RateLimiterTests {
    static let second: Int64 = 1_000_000_000
    let m1 = RateLimitSubject(callerID: "checkout", merchantID: "m1", merchantGroups: ["eu"], partnerID: "acq", environment: .test, category: "payment-transaction-management")
    let m2 = RateLimitSubject(callerID: "checkout", merchantID: "m2", merchantGroups: [], partnerID: "acq", environment: .test, category: "payment-transaction-management")

    func policy(merchant: LimitSpec? = LimitSpec(rate: 10), partner: LimitSpec? = nil, options: [String: RuleOptions] = [:], maxQueued: Int = 100) -> RateLimitPolicy {
        RateLimitPolicy(
            merchant: [.test: CategoryLimits(default: merchant)], partner: [.test: CategoryLimits(default: partner)],
            options: options, maxQueued: maxQueued)
    }

    /// Admissions of `subject` at evenly spaced instants over [start, start + span).
    func admitted(_ limiter: RateLimiter, _ subject: RateLimitSubject, _ policy: RateLimitPolicy, count: Int, from start: Int64, every step: Int64) -> Int {
        (0..<count).filter { limiter.decide(subject, policy: policy, now: start + Int64($0) * step) == .admit }.count
    }

    @Test("exactly the burst is admitted at one instant, then one per interval")
    func burstThenRate() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 10, burst: 5))
        #expect(admitted(limiter, m1, policy, count: 20, from: 0, every: 0) == 5)
        // 100 ms later exactly one more fits; 99 ms later none.
        #expect(limiter.decide(m1, policy: policy, now: Self.second / 10 - 1_000_000) != .admit)
        #expect(limiter.decide(m1, policy: policy, now: Self.second / 10) == .admit)
        #expect(limiter.decide(m1, policy: policy, now: Self.second / 10) != .admit)
    }

    @Test("a call that meets a key seen before and a new one commits both: the partner's burst spans its merchants")
    func seenAndNewKeysInOneCall() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 10, burst: 5), partner: LimitSpec(rate: 10, burst: 3))
        // m1 makes both keys; m2's first call finds the partner's key and makes its own merchant key.
        #expect(limiter.decide(m1, policy: policy, now: 0) == .admit)
        #expect(limiter.decide(m2, policy: policy, now: 0) == .admit)
        #expect(limiter.decide(m1, policy: policy, now: 0) == .admit)
        // The partner's burst of 3 is spent although each merchant has room left.
        #expect(limiter.decide(m2, policy: policy, now: 0) != .admit)
        #expect(limiter.trackedKeys == 3)
        // One interval later the partner admits one more, whichever merchant asks.
        #expect(limiter.decide(m2, policy: policy, now: Self.second / 10) == .admit)
        #expect(limiter.decide(m1, policy: policy, now: Self.second / 10) != .admit)
    }

    @Test("keys are equal when rule and parts are equal byte for byte, whatever storage the strings have")
    func keyEquality() {
        let category = "payment-transaction-management"
        let made = String(decoding: Array("m1".utf8), as: UTF8.self)
        let long = String(repeating: "x", count: 40)
        #expect(RateLimitKey(rule: .merchant, first: "m1", second: category) == RateLimitKey(rule: .merchant, first: made, second: String(category)))
        #expect(RateLimitKey(rule: .merchant, first: long, second: "") == RateLimitKey(rule: .merchant, first: String(decoding: Array(long.utf8), as: UTF8.self), second: ""))
        #expect(RateLimitKey(rule: .merchant, first: "m1", second: category).hashValue == RateLimitKey(rule: .merchant, first: made, second: category).hashValue)
        // Where one part ends and the other starts, and the rule, tell keys apart.
        #expect(RateLimitKey(rule: .callerMerchant, first: "ab", second: "c") != RateLimitKey(rule: .callerMerchant, first: "a", second: "bc"))
        #expect(RateLimitKey(rule: .merchant, first: "m1", second: category) != RateLimitKey(rule: .partner, first: "m1", second: category))
        #expect(RateLimitKey(rule: .merchant, first: long + "a", second: "") != RateLimitKey(rule: .merchant, first: long + "b", second: ""))
        // Many keys in one dictionary are each found again.
        var table: [RateLimitKey: Int] = [:]
        for index in 0..<10_000 { table[RateLimitKey(rule: .merchant, first: "m\(index)", second: category)] = index }
        #expect(table.count == 10_000)
        let found = (0..<10_000).filter { (index: Int) -> Bool in
            table[RateLimitKey(rule: .merchant, first: "m" + String(index), second: category)] == index
        }
        #expect(found.count == 10_000)
    }

    @Test("a steady overload is held to the rate over any window")
    func steadyOverload() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 10, burst: 10))
        // 50/s for 10 s against 10/s with burst 10: 10 (burst) + 100 (rate) - rounding at the edge.
        let count = admitted(limiter, m1, policy, count: 500, from: 0, every: Self.second / 50)
        #expect(count == 10 + 100 - 1 || count == 10 + 100)
    }

    @Test("no doubling at window edges: two bursts back to back are not both admitted")
    func noEdgeDoubling() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 10, burst: 10))
        let justBefore = admitted(limiter, m1, policy, count: 10, from: Self.second - 1, every: 0)
        let justAfter = admitted(limiter, m1, policy, count: 10, from: Self.second + 1, every: 0)
        #expect(justBefore == 10)
        #expect(justAfter == 0)
        // Over any one-second span at most burst + rate calls get through.
        #expect(admitted(limiter, m1, policy, count: 100, from: Self.second + 2, every: Self.second / 100) <= 10)
    }

    @Test("merchants have separate keys: one at its limit does not affect another")
    func separateKeys() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 5, burst: 5))
        #expect(admitted(limiter, m1, policy, count: 50, from: 0, every: 0) == 5)
        #expect(admitted(limiter, m2, policy, count: 5, from: 0, every: 0) == 5)
    }

    @Test("nesting: the tighter of merchant and acquirer levels decides, either way round")
    func nesting() {
        let tightMerchant = policy(merchant: LimitSpec(rate: 3, burst: 3), partner: LimitSpec(rate: 100, burst: 100))
        let limiter = RateLimiter()
        #expect(admitted(limiter, m1, tightMerchant, count: 10, from: 0, every: 0) == 3)
        #expect(admitted(limiter, m2, tightMerchant, count: 10, from: 0, every: 0) == 3)

        let tightPartner = policy(merchant: LimitSpec(rate: 100, burst: 100), partner: LimitSpec(rate: 4, burst: 4))
        let shared = RateLimiter()
        #expect(admitted(shared, m1, tightPartner, count: 3, from: 0, every: 0) == 3)
        #expect(admitted(shared, m2, tightPartner, count: 3, from: 0, every: 0) == 1)
        guard case .refuse(let error, let rule) = shared.decide(m2, policy: tightPartner, now: 0) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(rule == .partner)
        #expect(error.code == .rateLimited)
        #expect(error.headers.contains { $0.0 == "X-Ratelimit-Limit" && $0.1 == "4, 4;w=1;name=\"partner\"" })
        #expect(error.headers.contains { $0.0 == "Retry-After" })
    }

    @Test("a refusal by one rule spends nothing of the others")
    func refusalSpendsNothing() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 1, burst: 1), partner: LimitSpec(rate: 2, burst: 2))
        #expect(limiter.decide(m1, policy: policy, now: 0) == .admit)
        for _ in 0..<10 { _ = limiter.decide(m1, policy: policy, now: 0) }
        // m1's refusals did not use the partner's second slot.
        #expect(limiter.decide(m2, policy: policy, now: 0) == .admit)
    }

    @Test("shaping waits up to max_delay, then refuses; the queue is bounded")
    func shaping() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 10, burst: 1), options: ["merchant": RuleOptions(maxDelayMs: 250)], maxQueued: 100)
        #expect(limiter.decide(m1, policy: policy, now: 0) == .admit)
        #expect(limiter.decide(m1, policy: policy, now: 0) == .delay(nanoseconds: 100_000_000))
        #expect(limiter.decide(m1, policy: policy, now: 0) == .delay(nanoseconds: 200_000_000))
        guard case .refuse = limiter.decide(m1, policy: policy, now: 0) else {
            Issue.record("a wait of 300 ms exceeds max_delay and must be refused")
            return
        }
        let bounded = RateLimiter()
        let tinyQueue = self.policy(merchant: LimitSpec(rate: 10, burst: 1), options: ["merchant": RuleOptions(maxDelayMs: 10_000)], maxQueued: 2)
        #expect(bounded.decide(m1, policy: tinyQueue, now: 0) == .admit)
        #expect(bounded.decide(m1, policy: tinyQueue, now: 0) != .admit)
        #expect(bounded.decide(m1, policy: tinyQueue, now: 0) != .admit)
        guard case .refuse = bounded.decide(m1, policy: tinyQueue, now: 0) else {
            Issue.record("a full queue must refuse")
            return
        }
        bounded.dequeued()
        guard case .delay = bounded.decide(m1, policy: tinyQueue, now: 0) else {
            Issue.record("room in the queue again")
            return
        }
    }

    @Test("shadow mode counts would-be refusals and enforces nothing")
    func shadow() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 1, burst: 2), options: ["merchant": RuleOptions(shadow: true)])
        #expect(admitted(limiter, m1, policy, count: 10, from: 0, every: 0) == 10)
        #expect(limiter.counts[.merchant]?.shadowRefused == 8)
        #expect(limiter.counts[.merchant]?.admitted == 2)
    }

    @Test("decisions on several threads at once are each counted once, per rule, beside the ones refused and delayed")
    func countsFromThreadsAtOnce() async {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 1e9, burst: 1_000_000), partner: LimitSpec(rate: 1e9, burst: 1_000_000))
        let subjects = (0..<8).map {
            RateLimitSubject(callerID: "c\($0)", merchantID: "m\($0)", merchantGroups: [], partnerID: "acq", environment: .test, category: "x")
        }
        // Eight threads of their own (not the cooperative pool's few), so that the counters' stripes are many.
        await withTaskGroup(of: Void.self) { group in
            for subject in subjects {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        Thread {
                            // All at one instant: 40,000 calls take 40 µs of the shared partner key's millisecond of
                            // burst, so none is refused however the threads are scheduled.
                            for _ in 0..<5_000 { _ = limiter.decide(subject, policy: policy, now: 0) }
                            done.resume()
                        }.start()
                    }
                }
            }
        }
        #expect(limiter.counts[.merchant]?.admitted == 40_000)
        #expect(limiter.counts[.partner]?.admitted == 40_000)
        // A refusal and a delay are counted as before, beside the admissions.
        let tight = self.policy(merchant: LimitSpec(rate: 1, burst: 1), options: ["merchant": RuleOptions(maxDelayMs: 2_000)])
        let other = RateLimitSubject(callerID: "c", merchantID: "solo", merchantGroups: [], partnerID: "acq", environment: .test, category: "x")
        #expect(limiter.decide(other, policy: tight, now: 0) == .admit)
        #expect(limiter.decide(other, policy: tight, now: 0) == .delay(nanoseconds: Self.second))
        #expect(limiter.decide(other, policy: tight, now: 0) == .delay(nanoseconds: 2 * Self.second))
        guard case .refuse = limiter.decide(other, policy: tight, now: 0) else {
            Issue.record("a third wait beyond max_delay_ms must be refused")
            return
        }
        let merchant = limiter.counts[.merchant]
        #expect(merchant?.admitted == 40_001 && merchant?.delayed == 2 && merchant?.refused == 1 && merchant?.shadowRefused == 0)
    }

    @Test("Klarna's 429 holds the key locally until its reset, then releases it")
    func feedbackHold() {
        let limiter = RateLimiter()
        let policy = policy(merchant: nil)
        #expect(limiter.decide(m1, policy: policy, now: 0) == .admit)
        limiter.hold(m1, until: 2 * Self.second)
        guard case .refuse(let error, _) = limiter.decide(m1, policy: policy, now: Self.second) else {
            Issue.record("held key must refuse")
            return
        }
        #expect(error.headers.contains { $0.0 == "Retry-After" && $0.1 == "1" })
        #expect(limiter.decide(m2, policy: policy, now: Self.second) == .admit)
        #expect(limiter.decide(m1, policy: policy, now: 2 * Self.second) == .admit)
    }

    @Test("plans assigned by merchant or group replace the environment's defaults")
    func plans() {
        var policy = policy(merchant: LimitSpec(rate: 1, burst: 1))
        policy.plans = ["high-volume": RatePlan(merchant: CategoryLimits(default: LimitSpec(rate: 100, burst: 5)))]
        policy.groupPlans = ["eu": "high-volume"]
        let limiter = RateLimiter()
        #expect(admitted(limiter, m1, policy, count: 10, from: 0, every: 0) == 5)
        #expect(admitted(limiter, m2, policy, count: 10, from: 0, every: 0) == 1)
    }

    @Test("idle keys expire, so memory follows active keys")
    func sweep() {
        let limiter = RateLimiter()
        let policy = policy(merchant: LimitSpec(rate: 10, burst: 10))
        for index in 0..<100_000 {
            let subject = RateLimitSubject(callerID: "c", merchantID: "m\(index)", merchantGroups: [], partnerID: "acq", environment: .test, category: "x")
            _ = limiter.decide(subject, policy: policy, now: 0)
        }
        #expect(limiter.trackedKeys == 100_000)
        limiter.sweep(now: Self.second)
        #expect(limiter.trackedKeys == 0)
    }

    @Test("the policy file's problems are named")
    func policyProblems() {
        var policy = RateLimitPolicy.klarnaDefaults
        policy.merchantPlans = ["m1": "nope"]
        policy.options = ["merchants": RuleOptions(shadow: true)]
        policy.merchant[.test]?.categories?["not-a-category"] = LimitSpec(rate: 0)
        let problems = policy.problems(knownCategories: ["payment-request-management"])
        #expect(problems.count == 4)
    }
}
