import CoreMetrics
import GatewayCore
import NIOConcurrencyHelpers
import NIOCore

/// The gateway's metrics, made through one swift-metrics factory (Prometheus in `serve`, a private registry in
/// tests, no-op when nothing is configured).
///
/// Metric objects are made once per label combination and cached. A call on an event loop is counted in its loop's
/// `Memo` (a dictionary lookup and an append, no lock), which hands its calls to the series in batches and before
/// every scrape (`ProxyRuntime.flushMetrics`), so `/metrics` shows every call answered before it. Merchant ids
/// become a label only when `merchantLabels` is set: with thousands of merchants every other series would be
/// multiplied by that many.
public final class GatewayMetrics: Sendable {
    /// The factory every metric here is made with; other parts of the gateway use it too so that one registry
    /// holds everything (the process-wide `MetricsSystem` is bootstrapped with the same factory in `serve`).
    public let factory: any MetricsFactory
    /// Whether `merchant` is a label of the per-call series.
    public let merchantLabels: Bool

    private let calls = NIOLockedValueBox<[CallKey: CallSeries]>([:])
    private let errors = NIOLockedValueBox<[String: Counter]>([:])
    private let sampled: SampledSeries

    /// A factory whose metrics go nowhere: the default where no metrics are wanted.
    public static let disabled = GatewayMetrics(factory: NOOPMetricsHandler.instance)

    /// Makes the metrics over `factory`.
    public init(factory: any MetricsFactory, merchantLabels: Bool = false) {
        self.factory = factory
        self.merchantLabels = merchantLabels
        self.sampled = SampledSeries(factory: factory)
    }

    /// One event loop's view of the per-call series, used on that loop only: the series found without the lock
    /// the loops share, and the calls counted since they were last handed to them. Handing them over in batches
    /// (`flush`, every `batch` calls and before every scrape) adds to each counter (an atomic) once per batch and
    /// records the batch's durations in one run from this core (swift-prometheus takes a histogram's lock per
    /// value), where each call wrote the counter and took the histograms' locks in turn with the other loops.
    public final class Memo {
        fileprivate var calls: [CallKey: LoopSeries] = [:]
        fileprivate var errors: [String: Counter] = [:]
        /// The series with calls not yet handed over.
        private var dirty: [LoopSeries] = []
        private var pending = 0
        /// Calls counted before they are handed over.
        static let batch = 64

        /// An empty memo.
        public init() {}

        fileprivate func count(_ series: LoopSeries, duration: Int64, upstream: Int64?) {
            if series.durations.isEmpty { dirty.append(series) }
            series.durations.append(duration)
            if let upstream { series.upstreamDurations.append(upstream) }
            pending += 1
            if pending >= Self.batch { flush() }
        }

        /// Hands every call counted here to the shared series.
        public func flush() {
            for series in dirty { series.flush() }
            dirty.removeAll(keepingCapacity: true)
            pending = 0
        }
    }

    /// A series' calls counted on one loop and not yet handed over.
    fileprivate final class LoopSeries {
        let shared: CallSeries
        var durations: [Int64] = []
        var upstreamDurations: [Int64] = []

        init(_ shared: CallSeries) { self.shared = shared }

        func flush() {
            shared.requests.increment(by: durations.count)
            for nanoseconds in durations { shared.duration.recordNanoseconds(nanoseconds) }
            for nanoseconds in upstreamDurations { shared.upstreamDuration.recordNanoseconds(nanoseconds) }
            durations.removeAll(keepingCapacity: true)
            upstreamDurations.removeAll(keepingCapacity: true)
        }
    }

    fileprivate struct CallKey: Hashable {
        let family: String
        let status: Int
        let outcome: String
        let merchant: String?
    }

    /// The series one (family, status, outcome[, merchant]) combination writes to.
    fileprivate final class CallSeries: Sendable {
        let requests: Counter
        let duration: CoreMetrics.Timer
        let upstreamDuration: CoreMetrics.Timer

        init(_ key: CallKey, factory: any MetricsFactory) {
            var labels = [("family", key.family), ("status", String(key.status)), ("outcome", key.outcome)]
            var latencyLabels = [("family", key.family), ("outcome", key.outcome)]
            if let merchant = key.merchant {
                labels.append(("merchant", merchant))
                latencyLabels.append(("merchant", merchant))
            }
            requests = Counter(label: "kgw_requests_total", dimensions: labels, factory: factory)
            duration = CoreMetrics.Timer(label: "kgw_request_duration_seconds", dimensions: latencyLabels, factory: factory)
            upstreamDuration = CoreMetrics.Timer(label: "kgw_upstream_duration_seconds", dimensions: latencyLabels, factory: factory)
        }
    }

    /// Counts a finished call (its outcome or refusal record) and its latency since `started`.
    public func observe(_ record: CallRecord, started: NIODeadline) {
        observe(
            family: record.facts.operation?.family, status: record.status, gatewayErrorCode: record.gatewayErrorCode,
            merchantID: record.facts.merchantID, upstreamLatencyMicros: record.upstreamLatencyMicros, started: started)
    }

    /// Counts a finished call from the fields of its record that metrics use; the request path passes them from the
    /// call's object one by one, since handing over the whole record copies every reference it holds. `memo` is
    /// the event loop's, when the caller runs on one: the call reaches the series with the memo's next `flush`.
    public func observe(
        family: String?, status: Int?, gatewayErrorCode: String?, merchantID: String?, upstreamLatencyMicros: Int64?,
        started: NIODeadline, memo: Memo? = nil
    ) {
        let outcome = Self.outcome(gatewayErrorCode: gatewayErrorCode)
        let key = CallKey(
            family: family ?? "unmatched", status: status ?? 0, outcome: outcome,
            merchant: merchantLabels ? merchantID : nil)
        let duration = (NIODeadline.now() - started).nanoseconds
        let upstream = upstreamLatencyMicros.map { $0 * 1000 }
        if let memo {
            let series: LoopSeries
            if let known = memo.calls[key] {
                series = known
            } else {
                series = LoopSeries(sharedSeries(key))
                memo.calls[key] = series
            }
            memo.count(series, duration: duration, upstream: upstream)
        } else {
            let series = sharedSeries(key)
            series.requests.increment()
            series.duration.recordNanoseconds(duration)
            if let upstream { series.upstreamDuration.recordNanoseconds(upstream) }
        }
        if let code = gatewayErrorCode {
            let counter: Counter
            if let known = memo?.errors[code] {
                counter = known
            } else {
                counter = sharedErrorCounter(code)
                memo?.errors[code] = counter
            }
            counter.increment()
        }
    }

    private func sharedSeries(_ key: CallKey) -> CallSeries {
        calls.withLockedValue { calls in
            if let existing = calls[key] { return existing }
            let made = CallSeries(key, factory: factory)
            calls[key] = made
            return made
        }
    }

    private func sharedErrorCounter(_ code: String) -> Counter {
        errors.withLockedValue { errors in
            if let existing = errors[code] { return existing }
            let made = Counter(label: "kgw_gateway_errors_total", dimensions: [("code", code)], factory: factory)
            errors[code] = made
            return made
        }
    }

    /// `answered` (Klarna's answer relayed, whatever its status), `failed` (a permitted call the gateway could not
    /// complete: upstream or audit trouble) or `refused` (a gateway decision: authentication, grants, limits…).
    static func outcome(gatewayErrorCode: String?) -> String {
        guard let code = gatewayErrorCode else { return "answered" }
        return code.contains("UPSTREAM") || code.contains("AUDIT") ? "failed" : "refused"
    }

    /// Sets the gauges and counters that are read at scrape time rather than pushed from the hot path.
    public func record(_ sample: MetricsSample) {
        sampled.record(sample)
    }
}

/// Values read when metrics are scraped: state that is cheaper to look at than to track call by call.
public struct MetricsSample: Sendable {
    /// Open upstream connections by upstream authority and state (`idle`, `busy`, `draining`).
    public var upstreamConnections: [UpstreamConnectionCount] = []
    /// Records waiting in the audit writer's queue (nil when audit is off).
    public var auditQueueDepth: Int?
    /// Whether the audit writer can record (nil when audit is off).
    public var auditHealthy: Bool?
    /// Cumulative rate-limit decisions per rule.
    public var rateLimits: [RateLimitRule: RateLimitCounts] = [:]
    /// The version of the snapshot in force.
    public var snapshotVersion: Int64 = 0
    /// Reloads applied and rejected since start.
    public var reloads: (applied: Int, rejected: Int) = (0, 0)
    /// Ingress connections open.
    public var ingressConnections: Int = 0
    /// Upstream connections closed by certificate-rotation drains since start, by when.
    public var drainedConnections: [String: Int] = [:]
    /// Connections ended before any call since start, by reason (`connection_limit` and ConnectionRefusals').
    public var connectionRefusals: [String: Int] = [:]
    /// Connections the webhook listeners closed at their own connection limit since start (nil without one).
    public var webhookConnectionsRefused: Int?
    /// Log lines dropped since start because the log writer's queue was full (a stalled standard error).
    public var logLinesDropped = 0
    /// Cluster mode's lease state and the ledger client's totals (nil for a single instance).
    public var quota: (status: QuotaLeaseStatus, counters: QuotaLeaseCounters)?

    /// An empty sample.
    public init() {}
}

/// How many upstream connections of one kind are open.
public struct UpstreamConnectionCount: Sendable, Hashable {
    /// `host:port`.
    public var upstream: String
    /// `idle`, `busy` or `draining` (presenting a certificate that was rotated away).
    public var state: String
    /// How many.
    public var count: Int
}

/// Series set from samples; counters advance by the difference to the last sample.
private final class SampledSeries: Sendable {
    private struct State {
        var connectionGauges: [String: Gauge] = [:]
        var counters: [String: Counter] = [:]
        var lastTotals: [String: Int] = [:]
    }

    private let factory: any MetricsFactory
    private let state = NIOLockedValueBox(State())
    private let auditDepth: Gauge
    private let auditHealthy: Gauge
    private let snapshotVersion: Gauge
    private let ingressConnections: Gauge
    private let quotaFallback: Gauge
    private let quotaInstances: Gauge
    private let quotaParked: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        auditDepth = Gauge(label: "kgw_audit_queue_depth", factory: factory)
        auditHealthy = Gauge(label: "kgw_audit_healthy", factory: factory)
        snapshotVersion = Gauge(label: "kgw_snapshot_version", factory: factory)
        ingressConnections = Gauge(label: "kgw_ingress_connections", factory: factory)
        quotaFallback = Gauge(label: "kgw_quota_fallback", factory: factory)
        quotaInstances = Gauge(label: "kgw_quota_instances", factory: factory)
        quotaParked = Gauge(label: "kgw_quota_parked_calls", factory: factory)
    }

    func record(_ sample: MetricsSample) {
        if let depth = sample.auditQueueDepth { auditDepth.record(depth) }
        if let healthy = sample.auditHealthy { auditHealthy.record(healthy ? 1 : 0) }
        snapshotVersion.record(sample.snapshotVersion)
        ingressConnections.record(sample.ingressConnections)
        if let quota = sample.quota {
            quotaFallback.record(quota.status.fallback ? 1 : 0)
            quotaInstances.record(quota.status.instances)
            quotaParked.record(quota.status.parked)
        }
        state.withLockedValue { state in
            // Every series seen once stays, at zero when its connections are gone, so graphs do not break.
            var current: [String: Int] = state.connectionGauges.mapValues { _ in 0 }
            var labels: [String: (String, String)] = [:]
            for entry in sample.upstreamConnections {
                let key = entry.upstream + "|" + entry.state
                current[key, default: 0] += entry.count
                labels[key] = (entry.upstream, entry.state)
            }
            for (key, value) in current {
                if state.connectionGauges[key] == nil {
                    let (upstream, kind) = labels[key] ?? ("", "")
                    state.connectionGauges[key] = Gauge(
                        label: "kgw_upstream_connections", dimensions: [("upstream", upstream), ("state", kind)], factory: factory)
                }
                state.connectionGauges[key]?.record(value)
            }
            // Counters kept elsewhere as running totals advance here by the difference to the last sample.
            func advance(_ label: String, _ dimensions: [(String, String)], to total: Int) {
                let key = label + dimensions.map { "|" + $0.1 }.joined()
                if state.counters[key] == nil {
                    state.counters[key] = Counter(label: label, dimensions: dimensions, factory: factory)
                }
                let delta = total - state.lastTotals[key, default: 0]
                if delta > 0 { state.counters[key]?.increment(by: delta) }
                state.lastTotals[key] = total
            }
            for (rule, counts) in sample.rateLimits {
                let decisions = [("admitted", counts.admitted), ("delayed", counts.delayed), ("refused", counts.refused), ("shadow", counts.shadowRefused)]
                for (decision, total) in decisions {
                    advance("kgw_rate_limit_decisions_total", [("level", rule.rawValue), ("decision", decision)], to: total)
                }
            }
            for (when, total) in sample.drainedConnections {
                advance("kgw_upstream_drained_connections_total", [("when", when)], to: total)
            }
            if let counters = sample.quota?.counters {
                // No key in any label: with thousands of merchants a series per key would swamp the registry.
                advance("kgw_quota_lease_requests_total", [("result", "granted")], to: counters.leasesGranted)
                advance("kgw_quota_lease_requests_total", [("result", "empty")], to: counters.leasesEmpty)
                advance("kgw_quota_ledger_failures_total", [], to: counters.failures)
                advance("kgw_quota_fallbacks_total", [], to: counters.fallbacks)
                advance("kgw_quota_admissions_total", [("direction", "granted")], to: counters.admissionsGranted)
                advance("kgw_quota_admissions_total", [("direction", "returned")], to: counters.admissionsReturned)
            }
            advance("kgw_log_lines_dropped_total", [], to: sample.logLinesDropped)
            for (reason, total) in sample.connectionRefusals {
                advance("kgw_ingress_connections_refused_total", [("reason", reason)], to: total)
            }
            // A family of its own: the webhook listeners' limit is counted apart from the proxy's.
            if let refused = sample.webhookConnectionsRefused {
                advance("kgw_webhooks_connections_refused_total", [("reason", "connection_limit")], to: refused)
            }
            advance("kgw_config_reloads_total", [("result", "applied")], to: sample.reloads.applied)
            advance("kgw_config_reloads_total", [("result", "rejected")], to: sample.reloads.rejected)
        }
    }
}
