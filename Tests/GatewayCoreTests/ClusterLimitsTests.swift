import Synchronization
import Testing
@testable import GatewayCore

/// Cluster mode of the rate limiter, driven by hand: the ledger's work comes out as actions, answers go in with
/// an injected clock, and parked calls are woken by closures the test counts. No database, no event loop.
@Suite("Rate limits in cluster mode (lease book, injected clock)")
struct ClusterLimitsTests {
    static let ms: Int64 = 1_000_000
    let m1 = RateLimitSubject(callerID: "checkout", merchantID: "m1", merchantGroups: [], partnerID: "acq", environment: .test, category: "payment-transaction-management")
    let m2 = RateLimitSubject(callerID: "checkout", merchantID: "m2", merchantGroups: [], partnerID: "acq", environment: .test, category: "payment-transaction-management")

    func policy(
        merchant: LimitSpec? = LimitSpec(rate: 100, burst: 20), caller: LimitSpec? = nil, options: [String: RuleOptions] = [:], maxQueued: Int = 100
    ) -> RateLimitPolicy {
        RateLimitPolicy(merchant: [.test: CategoryLimits(default: merchant)], caller: caller, options: options, maxQueued: maxQueued)
    }

    /// A clustered limiter whose ledger work is collected instead of sent.
    final class Harness: Sendable {
        let limiter = RateLimiter(cluster: ClusterLimits.Settings(lease: .init(horizon: 100 * ClusterLimitsTests.ms, lifetime: 1_000 * ClusterLimitsTests.ms, instances: 3)))
        let sent = Mutex<[QuotaLeaseAction]>([])
        let woken = Mutex(0)

        init() {
            limiter.attachLedger { [weak self] actions in self?.sent.withLock { $0 += actions } }
        }

        func take() -> [QuotaLeaseAction] { sent.withLock { value in defer { value = [] }; return value } }
        var wake: @Sendable () -> Void { { [self] in self.woken.withLock { $0 += 1 } } }

        /// The one acquire sent since the last look.
        func acquire(sourceLocation: SourceLocation = #_sourceLocation) -> (QuotaLeaseKey, Int)? {
            let acquires = take().compactMap { action -> (QuotaLeaseKey, Int)? in
                if case .acquire(let key, let count) = action { return (key, count) }
                return nil
            }
            #expect(acquires.count == 1, "acquires: \(acquires.map(\.1))", sourceLocation: sourceLocation)
            return acquires.first
        }
    }

    @Test("a cold key parks the call and asks the ledger; the grant wakes it and the call is admitted")
    func coldKeyParksUntilGranted() throws {
        let h = Harness()
        let policy = policy()
        #expect(h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) == .park)
        let (key, count) = try #require(h.acquire())
        #expect(key.limit == RateLimitKey(rule: .merchant, first: "m1", second: "payment-transaction-management"))
        #expect(count >= 1 && count <= 10)
        #expect(h.limiter.quotaStatus?.parked == 1)
        h.limiter.leaseGranted(key, QuotaGrant(granted: count, wait: 0), now: 2 * Self.ms)
        #expect(h.woken.withLock { $0 } == 1)
        #expect(h.limiter.quotaStatus?.parked == 0)
        #expect(h.limiter.decide(m1, policy: policy, now: 2 * Self.ms, since: 0, wake: h.wake) == .admit)
        #expect(h.limiter.counts[.merchant]?.admitted == 1)
    }

    @Test("the 2,000th call hands its ledger work to the sink as directly as the first (no chain of thunks grows)")
    func ledgerSinkStaysFlat() {
        let limiter = RateLimiter(cluster: ClusterLimits.Settings(lease: .init(horizon: 100 * Self.ms, lifetime: 1_000 * Self.ms, instances: 1)))
        // Where a local of the sink lives: how far down the stack the sink runs below the same caller. A closure
        // re-wrapped on every read would put each call's sink two thunk frames deeper than the one before.
        let depths = Mutex<[Int]>([])
        limiter.attachLedger { _ in
            var marker = 0
            let address = withUnsafeMutablePointer(to: &marker) { Int(bitPattern: $0) }
            depths.withLock { $0.append(address) }
        }
        let policy = policy(maxQueued: 10_000)
        for m in 0..<2_000 {
            let subject = RateLimitSubject(
                callerID: "checkout", merchantID: "m\(m)", merchantGroups: [], partnerID: "acq", environment: .test,
                category: "payment-transaction-management")
            #expect(limiter.decide(subject, policy: policy, now: 0) == .park)
        }
        let seen = depths.withLock { $0 }
        #expect(seen.count == 2_000)
        if let first = seen.first, let last = seen.last {
            #expect(abs(first - last) < 4_096, "the sink ran \(abs(first - last)) bytes deeper on the last call than on the first")
        }
    }

    @Test("an admission taken for one rule is put back when another rule makes the call wait or refuses it")
    func multiRuleAtomicity() throws {
        let h = Harness()
        let policy = policy(caller: LimitSpec(rate: 100, burst: 20))
        // Both keys cold: the call parks on the first (merchant); the caller key is asked for too.
        #expect(h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) == .park)
        let asked = h.take()
        #expect(asked.count == 2)
        let keys = asked.compactMap { action -> QuotaLeaseKey? in
            if case .acquire(let key, _) = action { return key }
            return nil
        }
        let merchant = try #require(keys.first { $0.limit.rule == .merchant })
        let caller = try #require(keys.first { $0.limit.rule == .caller })
        // The merchant lease arrives first: the call decides again, spends a merchant admission, parks on the
        // caller key, and the merchant admission goes back.
        h.limiter.leaseGranted(merchant, QuotaGrant(granted: 5, wait: 0), now: Self.ms)
        #expect(h.limiter.decide(m1, policy: policy, now: Self.ms, since: 0, wake: h.wake) == .park)
        #expect(h.limiter.state.withLock { $0.cluster!.book.credits(merchant) } == 5)
        // The caller key is spent already: its refusal also leaves the merchant's admissions untouched.
        h.limiter.leaseGranted(caller, QuotaGrant(granted: 0, wait: 400 * Self.ms), now: 2 * Self.ms)
        guard case .refuse(let error, let rule) = h.limiter.decide(m1, policy: policy, now: 2 * Self.ms, since: 0, wake: h.wake) else {
            Issue.record("the spent caller key must refuse")
            return
        }
        #expect(rule == .caller)
        #expect(error.headers.contains { $0.0 == "Retry-After" && $0.1 == "1" })
        #expect(h.limiter.state.withLock { $0.cluster!.book.credits(merchant) } == 5)
        #expect(h.limiter.counts[.caller]?.refused == 1)
        #expect(h.limiter.counts[.merchant]?.admitted == nil)
    }

    @Test("a spent key refuses with the ledger's wait and asks nothing more until then")
    func spentKeyRefusesWithoutAsking() throws {
        let h = Harness()
        let policy = policy()
        _ = h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake)
        let (key, _) = try #require(h.acquire())
        h.limiter.leaseGranted(key, QuotaGrant(granted: 0, wait: 2_500 * Self.ms), now: 0)
        for step in 1...50 {
            guard case .refuse(let error, .merchant) = h.limiter.decide(m1, policy: policy, now: Int64(step) * 10 * Self.ms) else {
                Issue.record("expected a refusal at step \(step)")
                return
            }
            #expect(error.headers.contains { $0.0 == "Retry-After" && ["2", "3"].contains($0.1) })
        }
        #expect(h.take().isEmpty)
        #expect(h.limiter.decide(m1, policy: policy, now: 2_500 * Self.ms) == .park)
        #expect(h.acquire() != nil)
    }

    @Test("a failed lease request wakes parked calls into fallback, where this instance keeps to its share")
    func fallbackShare() throws {
        let h = Harness()
        // 30/s with a burst of 9, three instances: 10/s and a burst of 3 each.
        let policy = policy(merchant: LimitSpec(rate: 30, burst: 9))
        for _ in 0..<4 { #expect(h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) == .park) }
        let (key, _) = try #require(h.acquire())
        h.limiter.leaseFailed(key)
        #expect(h.woken.withLock { $0 } == 4)
        #expect(h.limiter.quotaStatus?.fallback == true)
        var admitted = 0
        for tick in 0..<1_000 {
            switch h.limiter.decide(m1, policy: policy, now: Int64(tick) * Self.ms, since: 0, wake: h.wake) {
            case .admit: admitted += 1
            case .refuse: break
            default: Issue.record("fallback decides at once: no parking, no ledger")
            }
        }
        // The share's burst at once, then one per 100 ms over the remaining 900 ms: never the whole limit.
        #expect(admitted == 3 + 9)
        #expect(h.take().isEmpty, "nothing is asked of the ledger in fallback")
        // The ledger answers again (a heartbeat): leasing resumes with the count it reported.
        h.limiter.ledgerReachable(instances: 2)
        #expect(h.limiter.quotaStatus == QuotaLeaseStatus(fallback: false, instances: 2, parked: 0, keys: 1))
        #expect(h.limiter.decide(m1, policy: policy, now: 1_000 * Self.ms, wake: h.wake) == .park)
    }

    @Test("holds learned from Klarna's 429s stay local: they refuse without touching a lease")
    func holdsStayLocal() throws {
        let h = Harness()
        let policy = policy()
        _ = h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake)
        let (key, count) = try #require(h.acquire())
        h.limiter.leaseGranted(key, QuotaGrant(granted: count, wait: 0), now: 0)
        h.limiter.hold(m1, until: 1_500 * Self.ms)
        guard case .refuse(let error, .merchant) = h.limiter.decide(m1, policy: policy, now: Self.ms) else {
            Issue.record("a held key refuses")
            return
        }
        #expect(error.message.contains("Klarna asked") || error.headers.contains { $0.0 == "Retry-After" && $0.1 == "2" })
        #expect(h.limiter.state.withLock { $0.cluster!.book.credits(key) } == count)
        #expect(h.take().isEmpty)
        #expect(h.limiter.decide(m2, policy: policy, now: Self.ms, wake: h.wake) == .park, "another merchant is not held")
    }

    @Test("shaping in cluster mode: wait and decide again within max_delay in all, then refuse")
    func shapingRetries() throws {
        let h = Harness()
        let policy = policy(options: ["merchant": RuleOptions(maxDelayMs: 250)])
        _ = h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake)
        let (key, _) = try #require(h.acquire())
        h.limiter.leaseGranted(key, QuotaGrant(granted: 0, wait: 100 * Self.ms), now: 0)
        #expect(h.limiter.decide(m1, policy: policy, now: 0) == .retry(afterNanoseconds: 100 * Self.ms))
        h.limiter.dequeued()
        // First decided 200 ms ago: another 100 ms would make 300 ms in all, beyond max_delay.
        guard case .refuse = h.limiter.decide(m1, policy: policy, now: 0, since: -200 * Self.ms) else {
            Issue.record("shaping never waits beyond max_delay in all")
            return
        }
        #expect(h.limiter.counts[.merchant]?.delayed == 1)
        #expect(h.limiter.counts[.merchant]?.refused == 1)
    }

    @Test("parked and shaped calls share the queue bound")
    func queueBound() throws {
        let h = Harness()
        let policy = policy(maxQueued: 2)
        #expect(h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) == .park)
        #expect(h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) == .park)
        guard case .refuse(_, .merchant) = h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) else {
            Issue.record("a full queue refuses")
            return
        }
        let (key, count) = try #require(h.acquire())
        h.limiter.leaseGranted(key, QuotaGrant(granted: count, wait: 0), now: Self.ms)
        #expect(h.limiter.quotaStatus?.parked == 0)
        #expect(h.limiter.decide(m1, policy: policy, now: Self.ms, wake: h.wake) == .admit)
    }

    @Test("a shadow rule never parks or asks the ledger: it is judged against this instance's share")
    func shadowUsesTheShare() {
        let h = Harness()
        let policy = policy(merchant: LimitSpec(rate: 30, burst: 9), options: ["merchant": RuleOptions(shadow: true)])
        var admitted = 0
        for _ in 0..<10 where h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake) == .admit { admitted += 1 }
        #expect(admitted == 10)
        #expect(h.take().isEmpty)
        #expect(h.limiter.counts[.merchant]?.admitted == 3)
        #expect(h.limiter.counts[.merchant]?.shadowRefused == 7)
    }

    @Test("unspent admissions are given back after the lease lifetime")
    func expiryGivesBack() throws {
        let h = Harness()
        let policy = policy()
        _ = h.limiter.decide(m1, policy: policy, now: 0, wake: h.wake)
        let (key, _) = try #require(h.acquire())
        h.limiter.leaseGranted(key, QuotaGrant(granted: 6, wait: 0), now: 0)
        #expect(h.limiter.decide(m1, policy: policy, now: Self.ms) == .admit)
        #expect(h.limiter.expireLeases(now: 500 * Self.ms).isEmpty)
        #expect(h.limiter.expireLeases(now: 1_000 * Self.ms) == [.release(key, count: 5)])
    }

    /// Three clustered limiters, each offered 5x the whole limit, share one ledger (the pure `QuotaLedger`) that
    /// answers after 3 ms: together they admit what one GCRA would, within 5%, never more; and a call is never
    /// lost: every parked call is woken and decided.
    @Test func threeLimitersTogetherHoldTheLimit() {
        let gcra = GCRA(rate: 20, burst: 5)
        let policy = policy(merchant: LimitSpec(rate: 20, burst: 5))
        let latency: Int64 = 3 * Self.ms
        let end: Int64 = 10_000 * Self.ms
        let harnesses = (0..<3).map { _ in Harness() }
        var ledgerTAT: Int64?
        var inFlight: [(due: Int64, instance: Int, key: QuotaLeaseKey, count: Int)] = []
        var admitted = 0
        var parkedCalls = 0
        let gap = Int64(1e9 / (gcra.rate * 5))
        var nextCall: [Int64] = [0, gap / 3, 2 * gap / 3]
        var now: Int64 = 0
        while now < end {
            inFlight.sort { $0.due < $1.due }
            while let first = inFlight.first, first.due <= now {
                inFlight.removeFirst()
                let grant = QuotaLedger.grant(gcra, tat: ledgerTAT, requested: first.count, now: first.due)
                ledgerTAT = grant.tat ?? ledgerTAT
                let wait = grant.granted > 0 ? 0 : max(0, (grant.nextAt ?? first.due) - first.due)
                harnesses[first.instance].limiter.leaseGranted(first.key, QuotaGrant(granted: grant.granted, wait: wait), now: first.due)
            }
            for (index, h) in harnesses.enumerated() {
                // Parked calls decide again once woken (the woken counter says how many were).
                let woken = h.woken.withLock { value in defer { value = 0 }; return value }
                for _ in 0..<woken where h.limiter.decide(m1, policy: policy, now: now, since: now, wake: h.wake) == .admit { admitted += 1 }
                if nextCall[index] <= now {
                    nextCall[index] += gap
                    switch h.limiter.decide(m1, policy: policy, now: now, wake: h.wake) {
                    case .admit: admitted += 1
                    case .park: parkedCalls += 1
                    default: break
                    }
                }
                for action in h.take() + h.limiter.expireLeases(now: now) {
                    switch action {
                    case .acquire(let key, let count): inFlight.append((now + latency, index, key, count))
                    case .release(_, let count): ledgerTAT = QuotaLedger.giveBack(gcra, tat: ledgerTAT ?? now, unused: count, now: now)
                    }
                }
            }
            now += Self.ms / 4
        }
        let ideal = gcra.rate * 10 + Double(gcra.burst)
        #expect(Double(admitted) <= ideal)
        #expect(Double(admitted) >= 0.95 * ideal, "admitted \(admitted) of \(ideal)")
        #expect(parkedCalls > 0)
    }
}
