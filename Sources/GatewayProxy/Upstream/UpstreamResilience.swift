import GatewayCore
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The circuit breakers of every upstream host, shared by all event loops, and their `kgw_upstream_breaker_state`
/// gauges (one per host, made when the host is first called, not per request).
public final class BreakerBoard: Sendable {
    private struct Entry {
        var breaker: CircuitBreaker
        let gauge: Gauge
    }

    private let settings: CircuitBreaker.Settings
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(settings: CircuitBreaker.Settings) { self.settings = settings }

    /// Whether an attempt to `host` may go out.
    func admit(host: String, now: Int64) -> CircuitBreaker.Admission {
        update(host) { $0.admit(now: now) }
    }

    /// Reports an admitted attempt's end.
    func record(host: String, failed: Bool, probe: Bool, now: Int64) {
        update(host) { $0.record(failed: failed, probe: probe, now: now) }
    }

    /// An admitted probe ended without a verdict.
    func abandonProbe(host: String, now: Int64) {
        update(host) { $0.abandonProbe(now: now) }
    }

    /// Every host's state (`closed`, `half-open`, `open`), sorted by host, for `/readyz`.
    public var states: [(host: String, state: String)] {
        entries.withLockedValue { entries in entries.map { (host: $0.key, state: $0.value.breaker.state.name) } }.sorted { $0.host < $1.host }
    }

    private func update<T>(_ host: String, _ body: (inout CircuitBreaker) -> T) -> T {
        let (result, before, after, gauge) = entries.withLockedValue { entries in
            var entry = entries[host] ?? Entry(
                breaker: CircuitBreaker(settings: settings), gauge: Gauge(label: "kgw_upstream_breaker_state", dimensions: [("host", host)]))
            let before = entries[host] == nil ? -1 : entry.breaker.state.gaugeValue
            let result = body(&entry.breaker)
            entries[host] = entry
            return (result, before, entry.breaker.state.gaugeValue, entry.gauge)
        }
        // The gauge is set outside the lock, and only when the state changed.
        if before != after { gauge.record(after) }
        return result
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
