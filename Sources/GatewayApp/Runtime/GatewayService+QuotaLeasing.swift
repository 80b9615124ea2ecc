import Foundation
import GatewayCore
import GatewayPostgres
import GatewayProxy
import Logging

extension GatewayService {
    /// With PostgreSQL storage, connects the runtime's limiter (made in cluster mode) to the ledger in the same
    /// database and heartbeats once, so the instance count is known before the first call; nil with SQLite.
    ///
    /// A first heartbeat that fails does not stop the start: the store was just reached, so the ledger is most
    /// likely back soon, and meanwhile the instance enforces each limit in full on its own (it has seen no other
    /// instance yet), which the log says.
    static func startQuotaLeasing(
        config: GatewayConfig, runtime: ProxyRuntime, environment: [String: String]?, logger: Logger
    ) async throws -> QuotaLeaseDriver? {
        guard config.storageIsPostgres else { return nil }
        let settings = config.quotaLeasing
        let url = try PostgresURL(config.storage, environment: environment ?? ProcessInfo.processInfo.environment)
        let ledger = try PostgresQuotaLedger(url: url, connectTimeout: .milliseconds(max(1_000, settings.ledgerTimeoutMs)), logger: logger)
        let driver = QuotaLeaseDriver(
            limiter: runtime.rateLimiter, backend: ledger, settings: settings.driverSettings(nodeID: config.nodeID), logger: logger)
        if await driver.heartbeat() {
            logger.notice(
                "quota leasing: limits are shared with the instances on this store",
                metadata: ["instances": "\(runtime.rateLimiter.quotaStatus?.instances ?? 1)", "horizon_ms": "\(settings.leaseHorizonMs)"])
        }
        return driver
    }
}
