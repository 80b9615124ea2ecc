/// How one attempt toward Klarna ended, as far as retrying is concerned.
public enum AttemptFailure: Sendable, Equatable {
    /// The connection (TCP or TLS) failed before any byte of the request left: Klarna saw nothing.
    case notSent
    /// The connection broke after the request was sent and before the whole answer arrived.
    case lostAfterSend
    /// No response head, or a stalled body, within its time limit, after the request was sent.
    case timedOut
    /// Klarna answered with this status; `retryAfter` (nanoseconds) comes from `Retry-After` or `X-Ratelimit-Reset`.
    case answered(status: Int, klarnaErrorCode: String?, retryAfter: Int64?)

    /// True when Klarna may have acted on the request without the gateway knowing the result.
    public var leavesOutcomeUnknown: Bool { self == .lostAfterSend || self == .timedOut }

    /// True when the upstream host counts as failing for the circuit breaker: no answer, or a 5xx.
    public var countsAgainstHost: Bool {
        switch self {
        case .notSent, .lostAfterSend, .timedOut: true
        case .answered(let status, _, _): status >= 500
        }
    }
}

/// Why a retry was made (the `reason` label of `kgw_upstream_retries_total`).
public enum RetryReason: String, Sendable, CaseIterable {
    /// The connection failed before sending.
    case connect
    /// The connection broke after sending.
    case lost
    /// No answer in time.
    case timeout
    /// Klarna answered 503.
    case unavailable = "503"
    /// Klarna answered 429.
    case rateLimited = "429"
    /// Klarna answered 500 `TIMEOUT`.
    case klarnaTimeout = "500_timeout"
}

/// Why no further attempt is made.
public enum RetryStop: Sendable, Equatable {
    /// The failure is a final answer (or a success-like answer) that retrying cannot change.
    case final
    /// Retrying could act twice: neither a read nor carrying an idempotency key.
    case unsafe
    /// The attempt limit is reached.
    case attemptsExhausted
    /// The next attempt could not start before the call's deadline.
    case deadline
    /// The retry budget is spent (retries already add their share of load).
    case budgetExhausted
}

/// What to do after a failed attempt.
public enum RetryDecision: Sendable, Equatable {
    /// Try again after `delay` nanoseconds.
    case retry(delay: Int64, reason: RetryReason)
    /// Give up.
    case stop(RetryStop)
}

/// When to send a call again: a connection that failed before sending always may be; 503, 429, 500 `TIMEOUT`
/// and a connection lost after sending only for reads or calls carrying an idempotency key. Attempts are limited,
/// spaced by `backoff` (429s by Klarna's reset instead), kept within the deadline and paid for from a budget.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// Waits between attempts.
    public var backoff: Backoff

    /// Three attempts, 100 ms doubling to at most 2 s.
    public init(maxAttempts: Int = 3, backoff: Backoff = Backoff()) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
    }

    /// The decision after attempt number `attempt` (1-based) failed with `failure`. `now` and `deadline` are on the
    /// same monotonic clock, in nanoseconds. A token is taken from `budget` only when the answer is to retry.
    public func decide<R: RandomNumberGenerator>(
        after failure: AttemptFailure, attempt: Int, repeatable: Bool, now: Int64, deadline: Int64,
        budget: inout RetryBudget, random: inout R
    ) -> RetryDecision {
        let reason: RetryReason
        var wait: Int64?
        switch failure {
        case .notSent:
            reason = .connect
        case .lostAfterSend:
            reason = .lost
        case .timedOut:
            reason = .timeout
        case .answered(503, _, _):
            reason = .unavailable
        case .answered(429, _, let retryAfter):
            reason = .rateLimited
            wait = retryAfter
        case .answered(500, "TIMEOUT", _):
            reason = .klarnaTimeout
        case .answered:
            return .stop(.final)
        }
        if reason != .connect && !repeatable { return .stop(.unsafe) }
        guard attempt < maxAttempts else { return .stop(.attemptsExhausted) }
        let delay = wait ?? backoff.delay(retry: attempt, random: &random)
        guard now + delay < deadline else { return .stop(.deadline) }
        guard budget.withdraw() else { return .stop(.budgetExhausted) }
        return .retry(delay: delay, reason: reason)
    }

    /// The error the caller gets when the gateway gives up without an answer from Klarna to relay (a final
    /// `.answered` failure is relayed as Klarna sent it, so it has no error here).
    ///
    /// - `outcomeUnknown`: some attempt was sent and never answered. For anything but a read that is 504
    ///   `GATEWAY_UPSTREAM_OUTCOME_UNKNOWN`, naming the key to retry with.
    /// - a read that timed out: 504 `GATEWAY_UPSTREAM_TIMEOUT`.
    /// - otherwise nothing reached Klarna (or a read may simply be sent again): 503 `GATEWAY_UPSTREAM_UNAVAILABLE`.
    public static func finalError(
        last: AttemptFailure, outcomeUnknown: Bool, method: String, idempotencyKey: String?, authority: String, attempts: Int
    ) -> GatewayError? {
        if case .answered = last { return nil }
        let isRead = method == "GET" || method == "HEAD"
        let tries = attempts == 1 ? "1 attempt" : "\(attempts) attempts"
        if outcomeUnknown && !isRead {
            let advice = idempotencyKey.map {
                "Retry with the same Klarna-Idempotency-Key: \($0) (Klarna replays the first answer if it acted)."
            } ?? "The call carried no Klarna-Idempotency-Key: check the resource's state at Klarna before sending it again."
            return GatewayError(
                .upstreamOutcomeUnknown,
                "The connection to Klarna (\(authority)) was lost after the request was sent (\(tries)); Klarna may or may not have acted on it. " + advice)
        }
        if last == .timedOut {
            return GatewayError(.upstreamTimeout, "Klarna (\(authority)) did not answer in time (\(tries)); the read can be repeated.")
        }
        return GatewayError(.upstreamUnavailable, "Klarna (\(authority)) could not be reached (\(tries)); nothing was forwarded, so the call can be repeated.")
    }
}
