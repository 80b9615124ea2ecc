import GatewayCore
import GatewayWebhooks
import NIOCore

extension GatewayConfig {
    /// `webhooks`: delivering Klarna's webhooks to internal destinations (docs/webhooks.md). Receiving needs a
    /// listener marked `klarna_webhooks: true`; routes live in `policies.webhooks`. Every key needs a restart.
    public struct Webhooks: Sendable, Codable, Equatable {
        /// The back-off's first window, milliseconds (each retry doubles it).
        public var backoffBaseMs: Int
        /// The back-off's largest window, milliseconds.
        public var backoffCapMs: Int
        /// Attempts before a delivery is `dead`.
        public var maxAttempts: Int
        /// Deliveries in flight per destination.
        public var concurrencyPerDestination: Int
        /// One attempt's limit, milliseconds.
        public var timeoutMs: Int
        /// How long a claimed delivery is held before another instance may take it over, seconds.
        public var leaseSeconds: Int
        /// How often the store is checked for due deliveries, milliseconds (new events wake the worker at once).
        public var pollIntervalMs: Int
        /// Consecutive failures that open a destination's breaker.
        public var breakerFailures: Int
        /// How long the breaker stays open before a probe, milliseconds.
        public var breakerOpenMs: Int
        /// Days events are kept after their last delivery (at least 7).
        public var retentionDays: Int
        /// Roots trusted for `https` destinations (PEM, relative to the config file); nil uses the system's.
        public var caFile: String?

        enum CodingKeys: String, CodingKey {
            case backoffBaseMs = "backoff_base_ms", backoffCapMs = "backoff_cap_ms", maxAttempts = "max_attempts"
            case concurrencyPerDestination = "concurrency_per_destination", timeoutMs = "timeout_ms", leaseSeconds = "lease_seconds"
            case pollIntervalMs = "poll_interval_ms", breakerFailures = "breaker_failures", breakerOpenMs = "breaker_open_ms"
            case retentionDays = "retention_days", caFile = "ca_file"
        }

        /// The production defaults: 10 s doubling to 6 h over 20 attempts (at least 26.8 h), 8 at a time per
        /// destination, 10 s per attempt, 60 s leases, a breaker after 5 failures for 30 s, 7 days' retention.
        public init() {
            let standard = WebhookDeliverySchedule.standard
            backoffBaseMs = Int(standard.backoff.base / 1_000_000)
            backoffCapMs = Int(standard.backoff.cap / 1_000_000)
            maxAttempts = standard.maxAttempts
            concurrencyPerDestination = 8
            timeoutMs = 10_000
            leaseSeconds = 60
            pollIntervalMs = 500
            breakerFailures = 5
            breakerOpenMs = 30_000
            retentionDays = 7
            caFile = nil
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Webhooks()
            backoffBaseMs = try c.decodeIfPresent(Int.self, forKey: .backoffBaseMs) ?? d.backoffBaseMs
            backoffCapMs = try c.decodeIfPresent(Int.self, forKey: .backoffCapMs) ?? d.backoffCapMs
            maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
            concurrencyPerDestination = try c.decodeIfPresent(Int.self, forKey: .concurrencyPerDestination) ?? d.concurrencyPerDestination
            timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs) ?? d.timeoutMs
            leaseSeconds = try c.decodeIfPresent(Int.self, forKey: .leaseSeconds) ?? d.leaseSeconds
            pollIntervalMs = try c.decodeIfPresent(Int.self, forKey: .pollIntervalMs) ?? d.pollIntervalMs
            breakerFailures = try c.decodeIfPresent(Int.self, forKey: .breakerFailures) ?? d.breakerFailures
            breakerOpenMs = try c.decodeIfPresent(Int.self, forKey: .breakerOpenMs) ?? d.breakerOpenMs
            retentionDays = try c.decodeIfPresent(Int.self, forKey: .retentionDays) ?? d.retentionDays
            caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        }

        /// What is wrong with the values, if anything.
        public var problems: [String] {
            var problems: [String] = []
            if backoffBaseMs < 1 || backoffCapMs < backoffBaseMs { problems.append("webhooks: backoff_base_ms must be >= 1 and <= backoff_cap_ms") }
            if maxAttempts < 1 { problems.append("webhooks: max_attempts must be >= 1") }
            if concurrencyPerDestination < 1 { problems.append("webhooks: concurrency_per_destination must be >= 1") }
            if leaseSeconds * 1000 <= timeoutMs { problems.append("webhooks: lease_seconds must be longer than timeout_ms, or a slow attempt is sent twice") }
            if retentionDays < 7 { problems.append("webhooks: retention_days must be >= 7 (Klarna retries an event for about a day)") }
            return problems
        }

        /// The worker's settings; `trustRootsPEM` is the `ca_file` read.
        public func deliverySettings(trustRootsPEM: String?) -> WebhookDeliverySettings {
            WebhookDeliverySettings(
                schedule: WebhookDeliverySchedule(baseMs: backoffBaseMs, capMs: backoffCapMs, maxAttempts: maxAttempts),
                concurrencyPerDestination: concurrencyPerDestination,
                breaker: CircuitBreaker.Settings(failureThreshold: breakerFailures, openDurationMs: breakerOpenMs),
                timeout: .milliseconds(Int64(timeoutMs)), leaseMicros: Int64(leaseSeconds) * 1_000_000,
                pollInterval: .milliseconds(pollIntervalMs), retentionMicros: Int64(retentionDays) * 86_400_000_000, trustRootsPEM: trustRootsPEM)
        }
    }

    /// Whether any listener receives Klarna's webhooks.
    public var receivesWebhooks: Bool { listeners.contains { $0.klarnaWebhooks == true } }
}
