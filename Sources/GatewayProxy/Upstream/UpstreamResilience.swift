import GatewayCore
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The circuit breakers of every upstream host, shared by all event loops, and their `kgw_upstream_breaker_state`
/// gauges (one per host, made when the host is first called, not per request).
///
/// A breaker that is closed with no failure counted is read without its lock: admitting an attempt and
/// reporting a success change nothing then, so the loops' calls in the steady state write no line another core
/// reads (the breakers' lock, shared by the loops and taken twice a call, cost about 1% of the throughput:
/// docs/performance.md, request path, fifteenth round). Each loop finds its
/// hosts through its own `Memo`, without the board's lock.
public final class BreakerBoard: Sendable {
    /// One host's breaker.
    final class Host: Sendable {
        private let breaker: Mutex<CircuitBreaker>
        /// The breaker is `closed(failures: 0)`: set under the lock after every change, read without it.
        private let clean = Atomic<Bool>(true)
        private let gauge: Gauge

        fileprivate init(name: String, settings: CircuitBreaker.Settings) {
            breaker = Mutex(CircuitBreaker(settings: settings))
            gauge = Gauge(label: "kgw_upstream_breaker_state", dimensions: [("host", name)])
            gauge.record(CircuitBreaker.State.closed(failures: 0).gaugeValue)
        }

        /// Whether an attempt may go out.
        func admit(now: Int64) -> CircuitBreaker.Admission {
            // A clean breaker that another loop is changing at this moment admits as if this call came just before.
            if clean.load(ordering: .acquiring) { return .allow }
            return update { $0.admit(now: now) }
        }

        /// Reports an admitted attempt's end.
        func record(failed: Bool, probe: Bool, now: Int64) {
            if !failed && clean.load(ordering: .acquiring) { return }
            update { $0.record(failed: failed, probe: probe, now: now) }
        }

        /// An admitted probe ended without a verdict.
        func abandonProbe(now: Int64) {
            update { $0.abandonProbe(now: now) }
        }

        fileprivate var state: CircuitBreaker.State { breaker.withLock { $0.state } }

        private func update<T>(_ body: (inout CircuitBreaker) -> T) -> T {
            let (result, before, after) = breaker.withLock { breaker in
                let before = breaker.state.gaugeValue
                let result = body(&breaker)
                clean.store(breaker.state == .closed(failures: 0), ordering: .releasing)
                return (result, before, breaker.state.gaugeValue)
            }
            // The gauge is set outside the lock, and only when the state changed.
            if before != after { gauge.record(after) }
            return result
        }
    }

    /// The hosts one event loop has called, found without the board's lock; used on that loop only.
    final class Memo {
        fileprivate var hosts: [String: Host] = [:]
    }

    private let settings: CircuitBreaker.Settings
    private let hosts = Mutex<[String: Host]>([:])

    init(settings: CircuitBreaker.Settings) { self.settings = settings }

    /// `name`'s breaker, made on its first call, found through the calling loop's `memo`.
    func host(_ name: String, memo: Memo) -> Host {
        if let known = memo.hosts[name] { return known }
        let host = hosts.withLock { hosts in
            if let known = hosts[name] { return known }
            let made = Host(name: name, settings: settings)
            hosts[name] = made
            return made
        }
        memo.hosts[name] = host
        return host
    }

    /// Every host's state (`closed`, `half-open`, `open`), sorted by host, for `/readyz`.
    public var states: [(host: String, state: String)] {
        hosts.withLock { hosts in hosts.map { (host: $0.key, state: $0.value.state.name) } }.sorted { $0.host < $1.host }
    }
}

/// The retry budget every loop's calls share. A full budget is read without its lock: a call's deposit changes
/// nothing then, so calls in the steady state take no lock the loops share; withdrawing (a retry) takes it.
final class SharedRetryBudget: Sendable {
    private let budget: Mutex<RetryBudget>
    /// The budget holds its capacity: set under the lock after every change, read without it.
    private let full = Atomic<Bool>(true)

    init(settings: RetryBudget.Settings) { budget = Mutex(RetryBudget(settings: settings)) }

    /// Adds a call's share, unless the budget is full.
    func deposit() {
        if full.load(ordering: .acquiring) { return }
        update { $0.deposit() }
    }

    /// Runs `body` on the budget under its lock (a retry decision, which may withdraw).
    func update<T>(_ body: (inout RetryBudget) -> T) -> T {
        budget.withLock { budget in
            let result = body(&budget)
            full.store(budget.tokens >= budget.settings.capacity, ordering: .releasing)
            return result
        }
    }
}

/// The retry counters, made once: one per reason, and one for attempts.
final class ResilienceMetrics: Sendable {
    let attempts = Counter(label: "kgw_upstream_attempts_total")
    private let retries: [RetryReason: Counter]

    init() {
        var retries: [RetryReason: Counter] = [:]
        for reason in RetryReason.allCases {
            retries[reason] = Counter(label: "kgw_upstream_retries_total", dimensions: [("reason", reason.rawValue)])
        }
        self.retries = retries
    }

    func retried(_ reason: RetryReason) { retries[reason]?.increment() }
}

/// Counts what is admitted (calls in flight, caller connections) against a limit, without a lock.
final class AdmissionGate: Sendable {
    let limit: Int
    private let current = Atomic<Int>(0)

    init(limit: Int) { self.limit = max(1, limit) }

    /// Takes a place; false (and nothing taken) when the gate is full.
    func enter() -> Bool {
        let after = current.add(1, ordering: .relaxed).newValue
        if after > limit {
            current.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives a place back.
    func leave() { current.subtract(1, ordering: .relaxed) }

    /// Places taken.
    var count: Int { current.load(ordering: .relaxed) }
}

/// The monotonic clock the resilience decisions run on.
enum UpstreamClock {
    /// Nanoseconds since an arbitrary start.
    static var now: Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}
