import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import Logging
import NIOPosix
import Testing

/// Issue 18's rate-limit state across instances: with PostgreSQL storage every limit is leased from the shared
/// ledger, so one instance's limiter cannot tell the cluster's room; its admin API reads the ledger instead.
@Suite("Admin API: rate-limit state across instances (PostgreSQL)")
struct AdminAPIClusterRateLimitTests {
    @Test(
        "calls through one instance take room that the other instance's admin API reads from the shared ledger",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func roomReadFromTheLedger() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let instances = try await PostgresInstances(
            server: server, databasePrefix: "kgw_rlc_", nodes: ["gw-a", "gw-b"], rateLimits: AdminAPIRateLimitTests.limits)
        defer { try? FileManager.default.removeItem(at: instances.directory) }
        let configs = instances.configs
        let admin = try await instances.adminWithOnePartner(merchant: "m1", account: "krn:partner:global:account:test:M1")
        let caller = try #require(try await admin.addCaller(id: "checkout").token).rendered.exposedValue
        let adminToken = try await admin.addAdmin(name: "ops", role: .viewer).token.exposedValue

        let logger = Logger(label: "admin-api-cluster", factory: { _ in SwiftLogNoOpLogHandler() })
        var services: [GatewayService] = []
        for config in configs {
            services.append(try await GatewayService.start(
                config: config, credentials: try await CredentialLoader.open(config: config, environment: [:]),
                journal: AccessLogJournal(logger: logger), logger: logger, threads: 1))
        }
        let runners = services.map { service in Task { _ = try? await service.run() } }
        #expect(services.allSatisfy { $0.runtime.rateLimiter.isClustered })

        // Two calls through instance a, admitted by leases of the merchant's key from the ledger (the partner's base
        // URL does not answer, which does not matter: the room is taken before Klarna is asked; the second call may
        // meet the open breaker instead).
        let calls = TestHTTPClient(port: try #require(services[0].ports["loopback"]), tls: nil)
        for _ in 0..<2 {
            _ = try await calls.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [("Authorization", "Bearer \(caller)")])
        }
        try await calls.close()
        let category = try #require(services[0].runtime.snapshots.current.catalogue.operations.first { $0.id == "readPaymentTransaction" }?.category)

        // Instance b's admin API: b made no call, so its own limiter knows nothing of a's; the ledger does.
        let adminB = try await AdminService.open(config: configs[1], environment: [:])
        let api = AdminAPI(service: adminB, gateway: services[1], audit: nil, logger: logger)
        let listener = try await AdminServer.start(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, routes: AdminRoutes(api: api)
        ) { Readiness(ready: true, json: "{}") }
        let client = TestHTTPClient(port: listener.port, tls: nil)
        // The ledger's pool connects on this first read, within its 1 s connect timeout; on a machine starved by the
        // parallel suite that can pass, and the answer then rightly says "unavailable": asked again, it must read.
        let read = { try await client.send("GET", "/admin/v1/rate-limits/merchants/m1", headers: [("Authorization", "Bearer \(adminToken)")]) }
        var answer = try await read()
        try await waitUntil("instance b's admin API to read the ledger") {
            if answer.json["ledger"]?.stringValue != "read" { answer = try await read() }
            return answer.json["ledger"]?.stringValue == "read"
        }
        #expect(answer.status == 200)
        #expect(answer.json["clustered"]?.boolValue == true)
        #expect(answer.json["ledger"]?.stringValue == "read")
        let rules = AdminAPIRateLimitTests.rules(answer)
        // At least the first call's admission is leased (a lease may cover more of the burst of 3 than was spent).
        let remaining = try #require(rules[category]?["remaining"]?.intValue, "no cluster room for the category called")
        #expect((0...2).contains(remaining))
        // Each admission spent refills in 100 s (rate 0.01), so the ledger's reset lies within the last spent one's
        // 100 s, less the time since the lease: a bound that holds however slowly a loaded machine reads it.
        let spent = 3 - remaining
        let reset = try #require(rules[category]?["reset_after_ms"]?.intValue)
        #expect(reset > (spent - 1) * 100_000 && reset <= spent * 100_000)
        // Categories nobody called have their full burst in the ledger (no row: never leased).
        let others = rules.filter { $0.key != category }
        #expect(!others.isEmpty && others.values.allSatisfy { $0["remaining"]?.intValue == 3 && $0["reset_after_ms"]?.intValue == 0 })

        try await client.close()
        await listener.stop()
        for runner in runners {
            runner.cancel()
            await runner.value
        }
        (admin.store as? PostgresStore)?.close()
        (adminB.store as? PostgresStore)?.close()
    }
}
