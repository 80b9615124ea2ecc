import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayProxy
import GatewayTestSupport
import Logging
import NIOPosix
import Testing

/// The admin API on one of two instances sharing PostgreSQL: its change reaches the other instance by
/// LISTEN/NOTIFY (polling off), and paging, search and If-Match behave as on SQLite.
@Suite struct AdminAPIPostgresTests {
    @Test(.enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func aSuspensionThroughTheAPIReachesTheOtherInstanceAtOnce() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let instances = try await PostgresInstances(server: server, databasePrefix: "kgw_admin_", nodes: ["gw-a", "gw-b"])
        defer { try? FileManager.default.removeItem(at: instances.directory) }
        let configs = instances.configs
        let admin = try await AdminService.open(config: configs[0], environment: [:])
        let acquirer = try TestPKI().issueClient(commonName: "acquirer")
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: Secret("klarna_test_api_PLANTEDpgADMIN0f3"), certificatePEM: acquirer.certificatePEM,
            clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:9", authForm: .rawKey))
        for index in 1...30 {
            try await admin.addMerchant(id: "m\(index)", partnerID: "acq", account: "krn:partner:global:account:test:PGA\(index)")
        }
        let token = try await admin.addAdmin(name: "ops", role: .operator).token.exposedValue

        let logger = Logger(label: "admin-api-postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        var services: [GatewayService] = []
        for config in configs {
            services.append(try await GatewayService.start(
                config: config, credentials: try await CredentialLoader.open(config: config, environment: [:]),
                journal: AccessLogJournal(logger: logger), logger: logger, threads: 1))
        }
        let runners = services.map { service in Task { _ = try? await service.run() } }
        let api = AdminAPI(service: admin, gateway: services[0], audit: nil, logger: logger, backoff: AdminBackoff(base: .milliseconds(5), ceiling: .milliseconds(20)))
        let listener = try await AdminServer.start(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, routes: AdminRoutes(api: api)
        ) { Readiness(ready: true, json: "{}") }
        let client = TestHTTPClient(port: listener.port, tls: nil)
        let bearer = ("Authorization", "Bearer \(token)")

        // Paging and search on PostgreSQL's byte order.
        let first = try await client.send("GET", "/admin/v1/merchants?limit=4", headers: [bearer])
        #expect(first.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["m1", "m10", "m11", "m12"])
        let next = try #require(first.json["next_cursor"]?.stringValue)
        let second = try await client.send("GET", "/admin/v1/merchants?limit=4&after=\(next)", headers: [bearer])
        #expect(second.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["m13", "m14", "m15", "m16"])
        let search = try await client.send("GET", "/admin/v1/merchants?q=pga2", headers: [bearer])
        #expect(search.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["m2", "m20", "m21", "m22", "m23", "m24", "m25", "m26", "m27", "m28", "m29"])

        // Each instance listens from its run loop; wait until both serve the store as it is.
        let generation = try await admin.store.generation()
        try await waitUntil("both instances loaded the store") { services.allSatisfy { $0.snapshotGeneration >= generation } }
        let etag = try #require(try await client.send("GET", "/admin/v1/merchants/m7", headers: [bearer]).header("ETag"))
        let started = ContinuousClock.now
        let suspended = try await client.send("POST", "/admin/v1/merchants/m7/suspend", headers: [bearer, ("If-Match", etag)])
        #expect(suspended.status == 200)
        try await waitUntil("instance b sees the suspension", timeout: .seconds(30)) {
            services[1].runtime.snapshots.current.merchants["m7"]?.record.status == .suspended
        }
        print("suspension visible on the other instance after \(ContinuousClock.now - started)")
        #expect(try await client.send("POST", "/admin/v1/merchants/m7/resume", headers: [bearer, ("If-Match", etag)]).status == 412)

        try await client.close()
        await listener.stop()
        for runner in runners {
            runner.cancel()
            await runner.value
        }
        (admin.store as? PostgresStore)?.close()
    }
}
