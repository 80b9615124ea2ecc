import Foundation

/// The parts of `gateway.yaml` a running gateway cannot change without a restart, and how a reload keeps them.
///
/// These are bound once at start: the event loops, sockets (listeners, admin), the store, the key ring, the audit writer, the
/// upstream trust store, timeouts, retries, breaker and idempotency-key setting the runtime was built with, ingress limits, the metrics label set, quota leasing, tracing and webhook delivery.
/// Everything else (policy and catalogue paths, egress rules, header stripping, the integrator tag, unknown
/// operations, drain time, reload interval, log level, shutdown grace) applies on reload. Listener certificate
/// and key *files* reload too: only their paths and the listener's shape need a restart.
enum RestartOnlySettings {
    /// The names of restart-only settings that differ between `running` and `loaded`.
    static func changed(from running: GatewayConfig, to loaded: GatewayConfig) -> [String] {
        var names: [String] = []
        func check<T: Encodable>(_ name: String, _ value: (GatewayConfig) -> T) {
            if encoded(value(running)) != encoded(value(loaded)) { names.append(name) }
        }
        check("node_id") { $0.nodeID }
        check("event_loops") { $0.eventLoops }
        check("storage") { $0.storage }
        check("master_key") { $0.masterKey }
        check("listeners") { $0.listeners }
        check("admin") { $0.admin }
        check("audit") { $0.audit }
        check("audit.enabled") { $0.auditEnabled }
        check("limits") { $0.limits }
        check("metrics") { $0.metrics }
        check("quota_leasing") { $0.quotaLeasing }
        check("tracing") { $0.tracing }
        check("webhooks") { $0.webhooks }
        check("upstream.ca_file") { $0.upstream.caFile }
        check("upstream.connect_timeout_ms") { $0.upstream.connectTimeoutMs }
        check("upstream.response_timeout_ms") { $0.upstream.responseTimeoutMs }
        check("upstream.max_idle_per_key") { $0.upstream.maxIdlePerKey }
        check("upstream.timeouts") { $0.upstream.timeouts }
        check("upstream.retries") { $0.upstream.retries }
        check("upstream.circuit_breaker") { $0.upstream.circuitBreaker }
        check("upstream.idempotency_keys") { $0.upstream.idempotencyKeys }
        return names
    }

    /// `rest` with every restart-only setting taken from `restartOnly`: what a reload installs.
    static func keeping(restartOnly running: GatewayConfig, rest loaded: GatewayConfig) -> GatewayConfig {
        var next = loaded
        next.nodeID = running.nodeID
        next.eventLoops = running.eventLoops
        next.storage = running.storage
        next.masterKey = running.masterKey
        next.listeners = running.listeners
        next.admin = running.admin
        next.audit = running.audit
        next.auditEnabled = running.auditEnabled
        next.limits = running.limits
        next.metrics = running.metrics
        next.quotaLeasing = running.quotaLeasing
        next.tracing = running.tracing
        next.webhooks = running.webhooks
        next.upstream.caFile = running.upstream.caFile
        next.upstream.connectTimeoutMs = running.upstream.connectTimeoutMs
        next.upstream.responseTimeoutMs = running.upstream.responseTimeoutMs
        next.upstream.maxIdlePerKey = running.upstream.maxIdlePerKey
        next.upstream.timeouts = running.upstream.timeouts
        next.upstream.retries = running.upstream.retries
        next.upstream.circuitBreaker = running.upstream.circuitBreaker
        next.upstream.idempotencyKeys = running.upstream.idempotencyKeys
        next.baseDirectory = running.baseDirectory
        return next
    }

    private static func encoded<T: Encodable>(_ value: T) -> Data? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try? encoder.encode(value)
    }
}
