/// The time limits of one call toward Klarna, in nanoseconds of a monotonic clock.
///
/// `responseHead` defaults to 60 s, just above the 59 s after which Klarna itself answers 500 `TIMEOUT`, so
/// Klarna's own answer normally wins and the call's outcome stays known.
public struct UpstreamTimeouts: Sendable, Equatable {
    /// TCP connect.
    public var connect: Int64
    /// TLS handshake, after the TCP connection is up.
    public var tlsHandshake: Int64
    /// From the request sent to the response head.
    public var responseHead: Int64
    /// Longest silence between two response body reads.
    public var bodyIdle: Int64
    /// The whole call, every attempt and back-off included.
    public var total: Int64

    /// Makes timeouts from milliseconds.
    public init(connectMs: Int, tlsHandshakeMs: Int, responseHeadMs: Int, bodyIdleMs: Int, totalMs: Int) {
        connect = Int64(connectMs) * 1_000_000
        tlsHandshake = Int64(tlsHandshakeMs) * 1_000_000
        responseHead = Int64(responseHeadMs) * 1_000_000
        bodyIdle = Int64(bodyIdleMs) * 1_000_000
        total = Int64(totalMs) * 1_000_000
    }

    /// 5 s connect, 10 s TLS handshake, 60 s to the response head, 30 s between body reads, 120 s in all.
    public static let defaults = UpstreamTimeouts(connectMs: 5_000, tlsHandshakeMs: 10_000, responseHeadMs: 60_000, bodyIdleMs: 30_000, totalMs: 120_000)
}

/// Everything the data plane needs to decide about failures toward Klarna: timeouts (global and per operation
/// family), retries, the retry budget, the circuit breaker and idempotency keys.
public struct ResiliencePolicy: Sendable {
    /// Timeouts for families without an override.
    public var timeouts: UpstreamTimeouts
    /// Per operation family (`payment-transaction`, …) overrides.
    public var familyTimeouts: [String: UpstreamTimeouts]
    /// When and how often to try again.
    public var retry: RetryPolicy
    /// The share of load retries may add.
    public var budget: RetryBudget.Settings
    /// Per-host circuit breaker.
    public var breaker: CircuitBreaker.Settings
    /// Add a `Klarna-Idempotency-Key` to POST and PATCH calls that lack one.
    public var addIdempotencyKeys: Bool

    /// Makes a policy; the defaults are documented in docs/resilience.md.
    public init(
        timeouts: UpstreamTimeouts = .defaults, familyTimeouts: [String: UpstreamTimeouts] = [:], retry: RetryPolicy = RetryPolicy(),
        budget: RetryBudget.Settings = .init(), breaker: CircuitBreaker.Settings = .init(), addIdempotencyKeys: Bool = true
    ) {
        self.timeouts = timeouts
        self.familyTimeouts = familyTimeouts
        self.retry = retry
        self.budget = budget
        self.breaker = breaker
        self.addIdempotencyKeys = addIdempotencyKeys
    }

    /// The timeouts of an operation family (nil: an operation outside the catalogue).
    public func timeouts(for family: String?) -> UpstreamTimeouts {
        family.flatMap { familyTimeouts[$0] } ?? timeouts
    }
}
