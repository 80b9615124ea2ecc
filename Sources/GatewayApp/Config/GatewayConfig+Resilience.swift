import GatewayCore

extension GatewayConfig {
    /// `upstream.timeouts`: every key optional, in milliseconds. Unset keys fall back to the legacy
    /// `upstream.connect_timeout_ms` / `response_timeout_ms`, then to the defaults; a family's keys fall back to
    /// the global ones, key by key.
    public struct TimeoutSettings: Sendable, Codable {
        /// TCP connect.
        public var connectMs: Int?
        /// TLS handshake.
        public var tlsHandshakeMs: Int?
        /// Request sent to response head.
        public var responseHeadMs: Int?
        /// Between response body reads.
        public var bodyIdleMs: Int?
        /// The whole call, retries included.
        public var totalMs: Int?
        /// Overrides by operation family.
        public var families: [String: TimeoutSettings]?

        enum CodingKeys: String, CodingKey {
            case connectMs = "connect_ms", tlsHandshakeMs = "tls_handshake_ms", responseHeadMs = "response_head_ms"
            case bodyIdleMs = "body_idle_ms", totalMs = "total_ms", families
        }

        /// No overrides.
        public init() {}

        /// These settings laid over `base`.
        func applied(to base: UpstreamTimeouts) -> UpstreamTimeouts {
            func ms(_ value: Int64) -> Int { Int(value / 1_000_000) }
            return UpstreamTimeouts(
                connectMs: connectMs ?? ms(base.connect), tlsHandshakeMs: tlsHandshakeMs ?? ms(base.tlsHandshake),
                responseHeadMs: responseHeadMs ?? ms(base.responseHead), bodyIdleMs: bodyIdleMs ?? ms(base.bodyIdle),
                totalMs: totalMs ?? ms(base.total))
        }
    }

    /// `upstream.retries`.
    public struct RetrySettings: Sendable, Codable {
        /// Attempts in all, the first included (1 turns retries off).
        public var maxAttempts: Int
        /// The first back-off window, milliseconds.
        public var backoffBaseMs: Int
        /// The largest back-off window, milliseconds.
        public var backoffCapMs: Int
        /// Share of load retries may add (0.1 = 10%).
        public var budgetRatio: Double
        /// Retries allowed in a burst before the ratio applies.
        public var budgetCapacity: Double

        enum CodingKeys: String, CodingKey {
            case maxAttempts = "max_attempts", backoffBaseMs = "backoff_base_ms", backoffCapMs = "backoff_cap_ms"
            case budgetRatio = "budget_ratio", budgetCapacity = "budget_capacity"
        }

        /// 3 attempts, 100 ms to 2 s back-off, 10% budget with a burst of 10.
        public init() {
            maxAttempts = 3
            backoffBaseMs = 100
            backoffCapMs = 2_000
            budgetRatio = 0.1
            budgetCapacity = 10
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = RetrySettings()
            maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
            backoffBaseMs = try c.decodeIfPresent(Int.self, forKey: .backoffBaseMs) ?? d.backoffBaseMs
            backoffCapMs = try c.decodeIfPresent(Int.self, forKey: .backoffCapMs) ?? d.backoffCapMs
            budgetRatio = try c.decodeIfPresent(Double.self, forKey: .budgetRatio) ?? d.budgetRatio
            budgetCapacity = try c.decodeIfPresent(Double.self, forKey: .budgetCapacity) ?? d.budgetCapacity
        }
    }

    /// `upstream.circuit_breaker`.
    public struct BreakerSettings: Sendable, Codable {
        /// Consecutive failures that open a host's breaker.
        public var failureThreshold: Int
        /// How long it stays open before a probe, milliseconds.
        public var openMs: Int

        enum CodingKeys: String, CodingKey { case failureThreshold = "failure_threshold", openMs = "open_ms" }

        /// 5 failures, 10 s.
        public init() {
            failureThreshold = 5
            openMs = 10_000
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            failureThreshold = try c.decodeIfPresent(Int.self, forKey: .failureThreshold) ?? 5
            openMs = try c.decodeIfPresent(Int.self, forKey: .openMs) ?? 10_000
        }
    }

    /// The data plane's resilience policy from `upstream`.
    public var resiliencePolicy: ResiliencePolicy {
        let defaults = UpstreamTimeouts.defaults
        let base = UpstreamTimeouts(
            connectMs: upstream.connectTimeoutMs, tlsHandshakeMs: Int(defaults.tlsHandshake / 1_000_000), responseHeadMs: upstream.responseTimeoutMs,
            bodyIdleMs: Int(defaults.bodyIdle / 1_000_000), totalMs: Int(defaults.total / 1_000_000))
        let global = upstream.timeouts.applied(to: base)
        let retries = upstream.retries
        return ResiliencePolicy(
            timeouts: global,
            familyTimeouts: (upstream.timeouts.families ?? [:]).mapValues { $0.applied(to: global) },
            retry: RetryPolicy(maxAttempts: retries.maxAttempts, backoff: Backoff(baseMs: retries.backoffBaseMs, capMs: retries.backoffCapMs)),
            budget: RetryBudget.Settings(ratio: retries.budgetRatio, capacity: retries.budgetCapacity),
            breaker: CircuitBreaker.Settings(failureThreshold: upstream.circuitBreaker.failureThreshold, openDurationMs: upstream.circuitBreaker.openMs),
            addIdempotencyKeys: upstream.idempotencyKeys)
    }

    /// A timeout override naming a family the catalogue does not have: refused, since it would silently apply
    /// to nothing. Checked by `serve` at start and by `check`.
    func unknownTimeoutFamilyProblem(catalogue: OperationCatalogue) -> ConfigError? {
        let unknown = Set((upstream.timeouts.families ?? [:]).keys).subtracting(catalogue.families)
        return unknown.sorted().first.map {
            ConfigError(source: "upstream.timeouts.families", reason: "'\($0)' is not an operation family of the catalogue")
        }
    }

    /// Problems with the resilience settings: non-positive times or counts, a family override inside another.
    func resilienceProblems() -> [String] {
        var problems: [String] = []
        func check(_ settings: TimeoutSettings, _ path: String) {
            let values = [("connect_ms", settings.connectMs), ("tls_handshake_ms", settings.tlsHandshakeMs), ("response_head_ms", settings.responseHeadMs),
                          ("body_idle_ms", settings.bodyIdleMs), ("total_ms", settings.totalMs)]
            for (name, value) in values where (value ?? 1) <= 0 { problems.append("\(path).\(name) must be positive") }
        }
        check(upstream.timeouts, "upstream.timeouts")
        for (family, settings) in upstream.timeouts.families ?? [:] {
            check(settings, "upstream.timeouts.families.\(family)")
            if settings.families != nil { problems.append("upstream.timeouts.families.\(family) cannot hold families of its own") }
        }
        if upstream.connectTimeoutMs <= 0 || upstream.responseTimeoutMs <= 0 { problems.append("upstream connect/response timeouts must be positive") }
        if upstream.retries.maxAttempts < 1 { problems.append("upstream.retries.max_attempts must be at least 1") }
        if upstream.retries.backoffBaseMs < 1 || upstream.retries.backoffCapMs < upstream.retries.backoffBaseMs {
            problems.append("upstream.retries.backoff_base_ms must be positive and backoff_cap_ms at least as large")
        }
        if upstream.retries.budgetRatio < 0 || upstream.retries.budgetCapacity < 1 {
            problems.append("upstream.retries.budget_ratio must be ≥ 0 and budget_capacity ≥ 1")
        }
        if upstream.circuitBreaker.failureThreshold < 1 || upstream.circuitBreaker.openMs < 1 {
            problems.append("upstream.circuit_breaker.failure_threshold and open_ms must be positive")
        }
        if limits.maxInFlightRequests < 1 || limits.maxConnections < 1 {
            problems.append("limits.max_in_flight_requests and max_connections must be positive")
        }
        return problems
    }
}
