/// A circuit breaker for one upstream host: closed while calls succeed, open (failing fast) after
/// `failureThreshold` consecutive failures, half-open after `openDuration` to let one probe through; the probe's
/// result closes it or opens it again.
///
/// A value type driven by an injected clock (`now`, monotonic nanoseconds): the data plane asks `admit` before
/// each attempt and reports each attempt's end, and does what the answers say.
public struct CircuitBreaker: Sendable, Equatable {
    /// Breaker settings.
    public struct Settings: Sendable, Equatable {
        /// Consecutive failures that open the breaker.
        public var failureThreshold: Int
        /// How long it stays open before a probe, nanoseconds.
        public var openDuration: Int64

        /// Five failures, ten seconds.
        public init(failureThreshold: Int = 5, openDurationMs: Int = 10_000) {
            self.failureThreshold = max(1, failureThreshold)
            self.openDuration = Int64(max(1, openDurationMs)) * 1_000_000
        }
    }

    /// The breaker's state.
    public enum State: Sendable, Equatable {
        /// Calls pass; `failures` consecutive failures so far.
        case closed(failures: Int)
        /// Calls fail fast until `until`.
        case open(until: Int64)
        /// One probe is out; others fail fast until it ends or `probeUntil` passes (a probe that never reports).
        case halfOpen(probeUntil: Int64)

        /// 0 closed, 1 half-open, 2 open (the value of `kgw_upstream_breaker_state`).
        public var gaugeValue: Int {
            switch self {
            case .closed: 0
            case .halfOpen: 1
            case .open: 2
            }
        }

        /// `closed`, `half-open` or `open`.
        public var name: String {
            switch self {
            case .closed: "closed"
            case .halfOpen: "half-open"
            case .open: "open"
            }
        }
    }

    /// What `admit` allows.
    public enum Admission: Sendable, Equatable {
        /// Go ahead.
        case allow
        /// Go ahead as the half-open probe; report its end with `probe: true`.
        case probe
        /// Fail fast; Klarna may be tried again after `retryAfter` nanoseconds.
        case reject(retryAfter: Int64)
    }

    /// The settings in force.
    public let settings: Settings
    /// The current state.
    public private(set) var state: State = .closed(failures: 0)

    /// A closed breaker.
    public init(settings: Settings = .init()) { self.settings = settings }

    /// Whether an attempt may go out now.
    public mutating func admit(now: Int64) -> Admission {
        switch state {
        case .closed:
            return .allow
        case .open(let until):
            guard now >= until else { return .reject(retryAfter: until - now) }
            state = .halfOpen(probeUntil: now + settings.openDuration)
            return .probe
        case .halfOpen(let probeUntil):
            guard now >= probeUntil else { return .reject(retryAfter: probeUntil - now) }
            state = .halfOpen(probeUntil: now + settings.openDuration)
            return .probe
        }
    }

    /// Reports how an admitted attempt ended: `failed` when it counts against the host.
    public mutating func record(failed: Bool, probe: Bool, now: Int64) {
        switch (state, failed) {
        case (.closed(let failures), true):
            state = failures + 1 >= settings.failureThreshold ? .open(until: now + settings.openDuration) : .closed(failures: failures + 1)
        case (.closed, false):
            state = .closed(failures: 0)
        case (.halfOpen, true) where probe:
            state = .open(until: now + settings.openDuration)
        case (.halfOpen, false) where probe:
            state = .closed(failures: 0)
        case (.open, false), (.halfOpen, false):
            // An attempt admitted before the breaker opened came back fine: Klarna is answering again.
            state = .closed(failures: 0)
        case (.open, true), (.halfOpen, true):
            break
        }
    }

    /// An admitted probe ended without a verdict (the caller left): let the next call probe at once.
    public mutating func abandonProbe(now: Int64) {
        if case .halfOpen = state { state = .halfOpen(probeUntil: now) }
    }
}
