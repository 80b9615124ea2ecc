import Foundation
@testable import GatewayApp
import GatewayCore
import Testing

/// `quota_leasing` as the config loader and `klarna-gateway check` read it.
@Suite("Quota leasing configuration")
struct QuotaLeasingConfigTests {
    static let path = ResilienceConfigTests.path
    static let ms: Int64 = 1_000_000

    @Test("defaults, overrides, and what the limiter and ledger client are built with")
    func settings() throws {
        let shipped = try ConfigLoader.loadGateway(path: Self.path, environment: [:])
        #expect(shipped.quotaLeasing == GatewayConfig.QuotaLeasing())
        let limiter = shipped.quotaLeasing.limiterSettings
        #expect(limiter.lease == QuotaLeaseBook<QuotaLeaseKey>.Settings(horizon: 100 * Self.ms, lifetime: 1_000 * Self.ms, instances: 1))
        #expect(limiter.maxPark == 5_000 * Self.ms)

        let config = try ConfigLoader.loadGateway(path: Self.path, environment: [
            "KGW_NODE_ID": "gw-7", "KGW_QUOTA_LEASING__LEASE_HORIZON_MS": "50", "KGW_QUOTA_LEASING__LEASE_LIFETIME_MS": "400",
            "KGW_QUOTA_LEASING__HEARTBEAT_INTERVAL_MS": "2000", "KGW_QUOTA_LEASING__INSTANCE_WINDOW_MS": "6000",
            "KGW_QUOTA_LEASING__LEDGER_TIMEOUT_MS": "2000",
        ])
        #expect(config.quotaLeasing.limiterSettings.lease.horizon == 50 * Self.ms)
        #expect(config.quotaLeasing.limiterSettings.lease.lifetime == 400 * Self.ms)
        #expect(config.quotaLeasing.limiterSettings.maxPark == 8_000 * Self.ms, "four ledger timeouts when that is above 5 s")
        let driver = config.quotaLeasing.driverSettings(nodeID: config.nodeID)
        #expect(driver.nodeID == "gw-7")
        #expect(driver.heartbeatInterval == .seconds(2) && driver.instanceWindow == .seconds(6) && driver.timeout == .seconds(2))
        #expect(driver.expiryInterval == .milliseconds(100))
        // Built into the runtime at start: a change waits for a restart, and the reload says so.
        #expect(RestartOnlySettings.changed(from: shipped, to: config).contains("quota_leasing"))
        #expect(RestartOnlySettings.keeping(restartOnly: shipped, rest: config).quotaLeasing == shipped.quotaLeasing)
    }

    @Test("impossible numbers are refused by serve and reported by check, the key named")
    func refusals() throws {
        for (environment, key) in [
            (["KGW_QUOTA_LEASING__LEASE_HORIZON_MS": "0"], "quota_leasing.lease_horizon_ms"),
            (["KGW_QUOTA_LEASING__LEDGER_TIMEOUT_MS": "-1"], "quota_leasing.ledger_timeout_ms"),
            (["KGW_QUOTA_LEASING__LEASE_LIFETIME_MS": "50"], "quota_leasing.lease_lifetime_ms"),
            (["KGW_QUOTA_LEASING__INSTANCE_WINDOW_MS": "1500"], "quota_leasing.instance_window_ms"),
        ] {
            expectRefused(path: Self.path, environment: environment, naming: key)
        }
    }
}
