import Foundation
import GatewayCore
import GatewayPostgres
import GatewayPostgres
import GatewayProxy
import GatewayTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// The ledger client against a PostgreSQL that is not there (a closed port): nothing waits on it for long, and
/// the limiter keeps every limit at this instance's share. The scale-out suite covers the reachable case and the
/// way back, with three gateway processes.
@Suite struct QuotaLeaseDriverTests {
    static let subject = RateLimitSubject(
        callerID: "orders", merchantID: "m1", merchantGroups: [], partnerID: "acq", environment: .test, category: "payment-transaction-management")

    @Test("an unreachable ledger: a parked call is woken within the timeout into fallback, which holds the instance to its share", .timeLimit(.minutes(1)))
    func unreachableLedgerFallsBack() async throws {
        let closedPort = try await FaultGateway.freePort()
        let limiter = RateLimiter(cluster: ClusterLimits.Settings())
        let ledger = try PostgresQuotaLedger(
            url: try PostgresURL("postgres://kgw@127.0.0.1:\(closedPort)/kgw?sslmode=disable"), connectTimeout: .milliseconds(300))
        defer { ledger.close() }
        let driver = QuotaLeaseDriver(
            limiter: limiter, backend: ledger, settings: .init(nodeID: "gw-test", timeout: .milliseconds(300)),
            logger: Logger(label: "quota-test", factory: { _ in SwiftLogNoOpLogHandler() }))
        // As if the last heartbeat had counted four instances before the ledger went away.
        limiter.ledgerReachable(instances: 4)
        // 40/s with a burst of 8 split four ways: 10/s and a burst of 2 for this instance.
        let policy = RateLimitPolicy(merchant: [.test: CategoryLimits(default: LimitSpec(rate: 40, burst: 8))])
        let woken = NIOLockedValueBox(0)
        let now = { Int64(NIODeadline.now().uptimeNanoseconds) }
        #expect(limiter.decide(Self.subject, policy: policy, now: now(), wake: { woken.withLockedValue { $0 += 1 } }) == .park)
        try await waitUntil("the parked call to be woken", timeout: .seconds(30)) { woken.withLockedValue { $0 } == 1 }
        #expect(limiter.quotaStatus?.fallback == true)
        #expect(driver.counters.failures >= 1)
        #expect(driver.counters.fallbacks == 1)

        // Decided again, the call and its neighbours are held to the share: never the whole limit.
        let instant = now()
        let admitted = (0..<20).filter { _ in limiter.decide(Self.subject, policy: policy, now: instant) == .admit }.count
        #expect(admitted == 2)
        // A heartbeat fails too: still in fallback, with the last count kept.
        #expect(await driver.heartbeat() == false)
        #expect(limiter.quotaStatus?.fallback == true)
        #expect(limiter.quotaStatus?.instances == 4)
        #expect(limiter.quotaStatus?.parked == 0)
    }
}

extension QuotaLeaseDriverTests {
    @Test(
        "a reachable ledger: calls are leased within the limit, with no timeouts and no fallback",
        .enabled(if: PostgresPropagationTests.serverURL != nil || PostgresPropagationTests.required, "needs PostgreSQL: run under bin/with-postgres"),
        // 2 s alone; in the full parallel suite on a slow host one run took over a minute, each of its parked calls
        // waiting for a lease from a loaded server. The limit guards against a hang, not a slow machine.
        .timeLimit(.minutes(3)))
    func reachableLedgerLeases() async throws {
        let server = try #require(PostgresPropagationTests.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let url = try await PostgresStore.createDatabase(named: TestPostgres.databaseName("kgw_lease_"), on: server)
        try await PostgresStore.open(url: url).close()
        let limiter = RateLimiter(cluster: ClusterLimits.Settings())
        let ledger = try PostgresQuotaLedger(url: try PostgresURL(url))
        defer { ledger.close() }
        // A generous timeout: this test is about leasing, and the full suite loads the machine.
        let driver = QuotaLeaseDriver(
            limiter: limiter, backend: ledger, settings: .init(nodeID: "gw-test", timeout: .seconds(20)),
            logger: Logger(label: "quota-test", factory: { _ in SwiftLogNoOpLogHandler() }))
        #expect(await driver.heartbeat())
        let policy = RateLimitPolicy(merchant: [.test: CategoryLimits(default: LimitSpec(rate: 40, burst: 8))])
        let start = ContinuousClock.now
        var admitted = 0
        // 200 calls/s for a second against 40/s: each parked call waits for its lease, then decides again.
        for _ in 0..<200 {
            let woken = NIOLockedValueBox(0)
            var since: Int64?
            decide: while true {
                let now = Int64(NIODeadline.now().uptimeNanoseconds)
                switch limiter.decide(Self.subject, policy: policy, now: now, since: since, wake: { woken.withLockedValue { $0 += 1 } }) {
                case .admit:
                    admitted += 1
                    break decide
                case .park:
                    since = since ?? now
                    // Beyond the driver's own 20 s: a ledger that slow falls back and wakes the call, which the
                    // expectations below then report, rather than this wait.
                    try await waitUntil("the lease", timeout: .seconds(60)) { woken.withLockedValue { $0 } > 0 }
                    woken.withLockedValue { $0 = 0 }
                default:
                    break decide
                }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        #expect(driver.counters.failures == 0)
        #expect(driver.counters.fallbacks == 0)
        #expect(limiter.quotaStatus?.fallback == false)
        #expect(driver.counters.leasesGranted > 0)
        #expect(Double(admitted) <= 8 + 40 * seconds + 1, "admitted \(admitted) in \(seconds) s")
        #expect(admitted >= 8, "at least the burst is admitted")
    }
}
