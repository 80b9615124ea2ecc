import GatewayCore
import Testing

/// A random source that replays fixed values, so back-off jitter is checked exactly.
struct FixedRandom: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

@Suite("Resilience decisions, without I/O")
struct ResilienceTests {
    static let second: Int64 = 1_000_000_000

    func decide(
        _ failure: AttemptFailure, attempt: Int = 1, repeatable: Bool, now: Int64 = 0, deadline: Int64 = 120 * second,
        policy: RetryPolicy = RetryPolicy(), budget: inout RetryBudget
    ) -> RetryDecision {
        var random = SystemRandomNumberGenerator()
        return policy.decide(after: failure, attempt: attempt, repeatable: repeatable, now: now, deadline: deadline, budget: &budget, random: &random)
    }

    @Test("a connection that failed before sending is retried for any method; other failures only when repeatable")
    func safety() {
        var budget = RetryBudget()
        #expect(decide(.notSent, repeatable: false, budget: &budget).isRetry(.connect))
        for failure: AttemptFailure in [.lostAfterSend, .timedOut, .answered(status: 503, klarnaErrorCode: nil, retryAfter: nil),
                                        .answered(status: 429, klarnaErrorCode: "RATE_LIMITED", retryAfter: Self.second),
                                        .answered(status: 500, klarnaErrorCode: "TIMEOUT", retryAfter: nil)] {
            #expect(decide(failure, repeatable: false, budget: &budget) == .stop(.unsafe), "\(failure)")
            #expect(decide(failure, repeatable: true, budget: &budget).isRetry, "\(failure)")
        }
        // Final answers are never retried, repeatable or not.
        for status in [200, 201, 400, 403, 404, 409, 502] {
            #expect(decide(.answered(status: status, klarnaErrorCode: nil, retryAfter: nil), repeatable: true, budget: &budget) == .stop(.final))
        }
        #expect(decide(.answered(status: 500, klarnaErrorCode: "INTERNAL_ERROR", retryAfter: nil), repeatable: true, budget: &budget) == .stop(.final))
    }

    @Test("attempts are limited, and a 429 waits for Klarna's reset only if that fits before the deadline")
    func limitsAndDeadline() {
        var budget = RetryBudget()
        let policy = RetryPolicy(maxAttempts: 3)
        #expect(decide(.notSent, attempt: 2, repeatable: true, policy: policy, budget: &budget).isRetry)
        #expect(decide(.notSent, attempt: 3, repeatable: true, policy: policy, budget: &budget) == .stop(.attemptsExhausted))
        let limited = AttemptFailure.answered(status: 429, klarnaErrorCode: "RATE_LIMITED", retryAfter: 2 * Self.second)
        #expect(decide(limited, repeatable: true, now: 0, deadline: 3 * Self.second, budget: &budget) == .retry(delay: 2 * Self.second, reason: .rateLimited))
        #expect(decide(limited, repeatable: true, now: 2 * Self.second, deadline: 3 * Self.second, budget: &budget) == .stop(.deadline))
    }

    @Test("back-off doubles per retry up to its cap, with jitter in the upper half of the window")
    func backoff() {
        let backoff = Backoff(baseMs: 100, capMs: 1_000)
        var low = FixedRandom(value: 0)
        var high = FixedRandom(value: .max)
        let ms: Int64 = 1_000_000
        #expect(backoff.delay(retry: 1, random: &low) == 50 * ms)
        #expect(backoff.delay(retry: 1, random: &high) == 100 * ms)
        #expect(backoff.delay(retry: 2, random: &low) == 100 * ms)
        #expect(backoff.delay(retry: 3, random: &high) == 400 * ms)
        #expect(backoff.delay(retry: 5, random: &high) == 1_000 * ms)
        #expect(backoff.delay(retry: 60, random: &high) == 1_000 * ms)
        var system = SystemRandomNumberGenerator()
        for retry in 1...8 {
            let delay = backoff.delay(retry: retry, random: &system)
            let window = min(1_000 * ms, 100 * ms << Int64(retry - 1))
            #expect(delay >= window / 2 && delay <= window)
        }
    }

    @Test("the retry budget lets retries add at most its ratio of load once the initial allowance is spent, then fails fast")
    func budget() {
        var budget = RetryBudget(settings: .init(ratio: 0.1, capacity: 5))
        var retries = 0
        var stops = 0
        for _ in 0..<1_000 {
            budget.deposit()
            switch decide(.answered(status: 503, klarnaErrorCode: nil, retryAfter: nil), repeatable: true, budget: &budget) {
            case .retry: retries += 1
            case .stop(let reason):
                #expect(reason == .budgetExhausted)
                stops += 1
            }
        }
        #expect(retries <= 100 + 5)
        #expect(retries >= 95)
        #expect(stops == 1_000 - retries)
        // A stop for another reason costs no token.
        var full = RetryBudget(settings: .init(ratio: 0.1, capacity: 2))
        _ = decide(.lostAfterSend, repeatable: false, budget: &full)
        #expect(full.tokens == 2)
    }

    @Test("the breaker opens after N consecutive failures, fails fast with the time left, probes once half-open, and closes on success")
    func breaker() {
        let s = Self.second
        var breaker = CircuitBreaker(settings: .init(failureThreshold: 3, openDurationMs: 10_000))
        for i in 0..<2 {
            #expect(breaker.admit(now: Int64(i)) == .allow)
            breaker.record(failed: true, probe: false, now: Int64(i))
        }
        // A success in between resets the count.
        breaker.record(failed: false, probe: false, now: 2)
        #expect(breaker.state == .closed(failures: 0))
        for _ in 0..<3 { breaker.record(failed: true, probe: false, now: s) }
        #expect(breaker.state == .open(until: 11 * s))
        #expect(breaker.state.gaugeValue == 2)
        #expect(breaker.admit(now: 4 * s) == .reject(retryAfter: 7 * s))
        // Half-open: one probe, others rejected.
        #expect(breaker.admit(now: 11 * s) == .probe)
        #expect(breaker.state.gaugeValue == 1)
        #expect(breaker.admit(now: 12 * s) == .reject(retryAfter: 9 * s))
        // The probe fails: open again.
        breaker.record(failed: true, probe: true, now: 12 * s)
        #expect(breaker.state == .open(until: 22 * s))
        // The next probe succeeds: closed.
        #expect(breaker.admit(now: 22 * s) == .probe)
        breaker.record(failed: false, probe: true, now: 23 * s)
        #expect(breaker.state == .closed(failures: 0))
        #expect(breaker.admit(now: 23 * s) == .allow)
        // A probe whose caller left does not wedge the breaker half-open.
        for _ in 0..<3 { breaker.record(failed: true, probe: false, now: 30 * s) }
        #expect(breaker.admit(now: 40 * s) == .probe)
        breaker.abandonProbe(now: 41 * s)
        #expect(breaker.admit(now: 41 * s) == .probe)
    }

    @Test("what counts against a host, and what leaves an outcome unknown")
    func classification() {
        #expect(AttemptFailure.notSent.countsAgainstHost && !AttemptFailure.notSent.leavesOutcomeUnknown)
        #expect(AttemptFailure.lostAfterSend.countsAgainstHost && AttemptFailure.lostAfterSend.leavesOutcomeUnknown)
        #expect(AttemptFailure.timedOut.leavesOutcomeUnknown)
        #expect(AttemptFailure.answered(status: 503, klarnaErrorCode: nil, retryAfter: nil).countsAgainstHost)
        #expect(!AttemptFailure.answered(status: 429, klarnaErrorCode: nil, retryAfter: nil).countsAgainstHost)
        #expect(!AttemptFailure.answered(status: 404, klarnaErrorCode: nil, retryAfter: nil).countsAgainstHost)
    }

    @Test("giving up: unknown outcomes of writes name the key; reads time out or are unavailable; Klarna's answers are relayed")
    func finalErrors() throws {
        let unknown = try #require(RetryPolicy.finalError(last: .lostAfterSend, outcomeUnknown: true, method: "POST", idempotencyKey: "k-123", authority: "klarna:443", attempts: 3))
        #expect(unknown.code == .upstreamOutcomeUnknown && unknown.status == 504)
        #expect(unknown.message.contains("Klarna-Idempotency-Key: k-123"))
        let keyless = try #require(RetryPolicy.finalError(last: .timedOut, outcomeUnknown: true, method: "DELETE", idempotencyKey: nil, authority: "k", attempts: 1))
        #expect(keyless.code == .upstreamOutcomeUnknown && keyless.message.contains("no Klarna-Idempotency-Key"))
        // An earlier lost attempt keeps the outcome unknown even if the last one never left.
        #expect(RetryPolicy.finalError(last: .notSent, outcomeUnknown: true, method: "PATCH", idempotencyKey: "k", authority: "k", attempts: 2)?.code == .upstreamOutcomeUnknown)
        #expect(RetryPolicy.finalError(last: .timedOut, outcomeUnknown: true, method: "GET", idempotencyKey: nil, authority: "k", attempts: 3)?.code == .upstreamTimeout)
        let refused = try #require(RetryPolicy.finalError(last: .notSent, outcomeUnknown: false, method: "POST", idempotencyKey: nil, authority: "k", attempts: 3))
        #expect(refused.code == .upstreamUnavailable && refused.status == 503)
        #expect(RetryPolicy.finalError(last: .answered(status: 503, klarnaErrorCode: nil, retryAfter: nil), outcomeUnknown: false, method: "GET", idempotencyKey: nil, authority: "k", attempts: 3) == nil)
    }

    @Test("idempotency keys are added to POST and PATCH only, never over the caller's, and not when turned off")
    func idempotencyKeys() {
        #expect(IdempotencyKeys.keyToAdd(method: "POST", existing: nil, enabled: true) { "new" } == "new")
        #expect(IdempotencyKeys.keyToAdd(method: "PATCH", existing: nil, enabled: true) { "new" } == "new")
        #expect(IdempotencyKeys.keyToAdd(method: "POST", existing: "mine", enabled: true) { "new" } == nil)
        #expect(IdempotencyKeys.keyToAdd(method: "GET", existing: nil, enabled: true) { "new" } == nil)
        #expect(IdempotencyKeys.keyToAdd(method: "DELETE", existing: nil, enabled: true) { "new" } == nil)
        #expect(IdempotencyKeys.keyToAdd(method: "POST", existing: nil, enabled: false) { "new" } == nil)
        #expect(IdempotencyKeys.isRepeatable(method: "GET", key: nil) && IdempotencyKeys.isRepeatable(method: "POST", key: "k"))
        #expect(!IdempotencyKeys.isRepeatable(method: "POST", key: nil) && !IdempotencyKeys.isRepeatable(method: "DELETE", key: nil))
    }

    @Test("per-family timeouts override the global ones")
    func familyTimeouts() {
        let fast = UpstreamTimeouts(connectMs: 1, tlsHandshakeMs: 2, responseHeadMs: 3, bodyIdleMs: 4, totalMs: 5)
        let policy = ResiliencePolicy(familyTimeouts: ["settlements": fast])
        #expect(policy.timeouts(for: "settlements") == fast)
        #expect(policy.timeouts(for: "payment-transaction") == .defaults)
        #expect(policy.timeouts(for: nil) == .defaults)
        #expect(UpstreamTimeouts.defaults.responseHead == 60 * Self.second)
    }
}

extension RetryDecision {
    var isRetry: Bool { if case .retry = self { true } else { false } }
    func isRetry(_ reason: RetryReason) -> Bool { if case .retry(_, let r) = self { r == reason } else { false } }
}
