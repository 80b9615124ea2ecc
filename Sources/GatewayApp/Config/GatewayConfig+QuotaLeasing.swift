import GatewayCore
import GatewayProxy

extension GatewayConfig {
    /// `quota_leasing`: how instances sharing a PostgreSQL store share each limit (docs/quota-leasing.md). Unused
    /// with SQLite storage, where the one instance's limits are local. Every key needs a restart.
    public struct QuotaLeasing: Sendable, Codable, Equatable {
        /// A lease covers about this much of a key's demand, milliseconds; bounds what an instance holds back.
        public var leaseHorizonMs: Int
        /// Unspent admissions go back to the ledger this long after their lease, milliseconds.
        public var leaseLifetimeMs: Int
        /// How often an instance records that it is alive, milliseconds.
        public var heartbeatIntervalMs: Int
        /// Instances seen within this window share each limit while the ledger is unreachable, milliseconds.
        public var instanceWindowMs: Int
        /// A ledger request slower than this counts as failed (the instance falls back to its share), milliseconds.
        public var ledgerTimeoutMs: Int

        enum CodingKeys: String, CodingKey {
            case leaseHorizonMs = "lease_horizon_ms", leaseLifetimeMs = "lease_lifetime_ms"
            case heartbeatIntervalMs = "heartbeat_interval_ms", instanceWindowMs = "instance_window_ms"
            case ledgerTimeoutMs = "ledger_timeout_ms"
        }

        /// 100 ms leases living 1 s, a heartbeat a second, a 10 s window, a 500 ms timeout.
        public init() {
            leaseHorizonMs = 100
            leaseLifetimeMs = 1_000
            heartbeatIntervalMs = 1_000
            instanceWindowMs = 10_000
            ledgerTimeoutMs = 500
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = QuotaLeasing()
            leaseHorizonMs = try c.decodeIfPresent(Int.self, forKey: .leaseHorizonMs) ?? d.leaseHorizonMs
            leaseLifetimeMs = try c.decodeIfPresent(Int.self, forKey: .leaseLifetimeMs) ?? d.leaseLifetimeMs
            heartbeatIntervalMs = try c.decodeIfPresent(Int.self, forKey: .heartbeatIntervalMs) ?? d.heartbeatIntervalMs
            instanceWindowMs = try c.decodeIfPresent(Int.self, forKey: .instanceWindowMs) ?? d.instanceWindowMs
            ledgerTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .ledgerTimeoutMs) ?? d.ledgerTimeoutMs
        }

        /// What is wrong with the numbers, for `serve` and `check`.
        public var problems: [String] {
            var problems: [String] = []
            let all = [
                ("lease_horizon_ms", leaseHorizonMs), ("lease_lifetime_ms", leaseLifetimeMs), ("heartbeat_interval_ms", heartbeatIntervalMs),
                ("instance_window_ms", instanceWindowMs), ("ledger_timeout_ms", ledgerTimeoutMs),
            ]
            for (name, value) in all where value <= 0 { problems.append("quota_leasing.\(name) must be positive") }
            if leaseLifetimeMs < leaseHorizonMs {
                problems.append("quota_leasing.lease_lifetime_ms must be at least lease_horizon_ms (a lease would expire before it is spent)")
            }
            if instanceWindowMs < 2 * heartbeatIntervalMs {
                problems.append("quota_leasing.instance_window_ms must be at least twice heartbeat_interval_ms (a live instance would drop out of the count between beats)")
            }
            return problems
        }

        /// The rate limiter's cluster-mode settings; `instances` starts at 1 until the first heartbeat counts them.
        public var limiterSettings: ClusterLimits.Settings {
            ClusterLimits.Settings(
                lease: .init(horizon: Int64(leaseHorizonMs) * 1_000_000, lifetime: Int64(leaseLifetimeMs) * 1_000_000, instances: 1),
                maxPark: Int64(max(5_000, 4 * ledgerTimeoutMs)) * 1_000_000)
        }

        /// The ledger client's settings for instance `nodeID`.
        public func driverSettings(nodeID: String) -> QuotaLeaseDriver.Settings {
            QuotaLeaseDriver.Settings(
                nodeID: nodeID, heartbeatInterval: .milliseconds(heartbeatIntervalMs), instanceWindow: .milliseconds(instanceWindowMs),
                timeout: .milliseconds(ledgerTimeoutMs), expiryInterval: .milliseconds(max(10, leaseLifetimeMs / 4)))
        }
    }
}
