/// When a delivery is tried again, and when it is given up: exponential back-off with equal jitter (`Backoff`),
/// a fixed number of attempts.
///
/// The default (first retry within 10 s, doubling, capped at 6 h, 20 attempts) keeps a delivery alive at least
/// 26.8 hours after its first attempt and at most 53.7 hours: longer than Klarna's own day of retries, so a
/// receiver down over a night and a morning still gets everything.
public struct WebhookDeliverySchedule: Sendable, Equatable {
    /// The back-off between attempts.
    public var backoff: Backoff
    /// Attempts before the delivery is `dead` (the first one included).
    public var maxAttempts: Int

    /// The documented production schedule.
    public static let standard = WebhookDeliverySchedule(baseMs: 10_000, capMs: 6 * 3_600_000, maxAttempts: 20)

    /// Makes a schedule from milliseconds.
    public init(baseMs: Int, capMs: Int, maxAttempts: Int) {
        backoff = Backoff(baseMs: baseMs, capMs: capMs)
        self.maxAttempts = max(1, maxAttempts)
    }

    /// What becomes of a delivery after attempt number `attempt` (1 for the first) ended: delivered on any 2xx,
    /// else pending again after the back-off, or dead once `maxAttempts` were made.
    public func after<R: RandomNumberGenerator>(
        attempt: Int, status: Int?, nowMicros: Int64, random: inout R
    ) -> (state: WebhookDeliveryState, nextAttemptMicros: Int64) {
        if let status, (200..<300).contains(status) { return (.delivered, nowMicros) }
        guard attempt < maxAttempts else { return (.dead, nowMicros) }
        return (.pending, nowMicros + backoff.delay(retry: attempt, random: &random) / 1_000)
    }

    /// The shortest and longest time from the first attempt to the last, in seconds (jitter at its extremes).
    public var span: (minimum: Double, maximum: Double) {
        var minimum: Int64 = 0
        var maximum: Int64 = 0
        for retry in 1..<maxAttempts {
            let window = min(backoff.cap, backoff.base << Int64(min(retry - 1, 30)))
            minimum += window / 2
            maximum += window
        }
        return (Double(minimum) / 1e9, Double(maximum) / 1e9)
    }
}

/// Per destination: how many deliveries are on their way and its circuit breaker, so a receiver that is down
/// costs one probe per open period instead of a connection attempt per pending event. A value; the worker holds
/// one per destination and feeds it a monotonic clock.
public struct WebhookDestinationGate: Sendable, Equatable {
    /// Deliveries in flight at most.
    public let concurrency: Int
    /// Deliveries in flight now.
    public private(set) var inFlight = 0
    /// The breaker.
    public private(set) var breaker: CircuitBreaker

    /// Makes a gate.
    public init(concurrency: Int, breaker: CircuitBreaker.Settings) {
        self.concurrency = max(1, concurrency)
        self.breaker = CircuitBreaker(settings: breaker)
    }

    /// Whether the worker should claim deliveries for this destination now (room, and the breaker not open).
    public func wantsWork(now: Int64) -> Bool {
        guard inFlight < concurrency else { return false }
        switch breaker.state {
        case .closed: return true
        case .open(let until): return now >= until && inFlight == 0
        case .halfOpen(let probeUntil): return now >= probeUntil && inFlight == 0
        }
    }

    /// How many deliveries to claim now: the free slots while the breaker is closed, one (the probe) once an open
    /// period has passed, else none; claiming more than the breaker lets start would leave them leased and idle.
    public func room(now: Int64) -> Int {
        guard wantsWork(now: now) else { return 0 }
        if case .closed = breaker.state { return concurrency - inFlight }
        return 1
    }

    /// Asks to start one claimed delivery: `allow`/`probe` start it (report its end), `reject` puts it back.
    public mutating func start(now: Int64) -> CircuitBreaker.Admission {
        guard inFlight < concurrency else { return .reject(retryAfter: 0) }
        let admission = breaker.admit(now: now)
        if case .reject = admission { return admission }
        inFlight += 1
        return admission
    }

    /// Reports a started delivery's end.
    public mutating func finish(delivered: Bool, probe: Bool, now: Int64) {
        inFlight = max(0, inFlight - 1)
        breaker.record(failed: !delivered, probe: probe, now: now)
    }
}
