import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayProxy
import GatewayTestSupport
import Logging
import Testing

/// A change committed after an instance loaded its first snapshot but before its LISTEN was in place notified
/// nobody there; with polling off (an hour), only the check every listen starts with brings it in.
@Suite struct StoreChangeBeforeListenTests {
    @Test(
        "a change committed between the first snapshot and the first listen reaches the instance without a poll",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func changeBeforeTheFirstListen() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let instances = try await PostgresInstances(server: server, databasePrefix: "kgw_gap_", nodes: ["gw-a"])
        defer { try? FileManager.default.removeItem(at: instances.directory) }
        let config = instances.configs[0]
        let admin = try await instances.adminWithOnePartner(merchant: "m1", account: "krn:partner:global:account:test:GAP1")

        let logger = Logger(label: "store-change-gap", factory: { _ in SwiftLogNoOpLogHandler() })
        // Started: the first snapshot is loaded, and nothing listens yet (`run` starts the listen).
        let service = try await GatewayService.start(
            config: config, credentials: try await CredentialLoader.open(config: config, environment: [:]),
            journal: AccessLogJournal(logger: logger), logger: logger, threads: 1)
        #expect(service.runtime.snapshots.current.merchants["m1"]?.record.status == .active)
        _ = try await admin.setMerchantStatus(id: "m1", .suspended)

        let runner = Task { _ = try? await service.run() }
        try await waitUntil("the suspension committed before the listen is loaded", timeout: .seconds(30)) {
            service.runtime.snapshots.current.merchants["m1"]?.record.status == .suspended
        }
        runner.cancel()
        await runner.value
        (admin.store as? PostgresStore)?.close()
    }
}
