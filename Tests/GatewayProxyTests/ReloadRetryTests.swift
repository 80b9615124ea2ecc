import Foundation
import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayProxy
import GatewayTestSupport
import Logging
import NIOConcurrencyHelpers
import Testing

/// A store read that fails during a reload (PostgreSQL restarting, a read past its deadline) is not a verdict on
/// the change: the next tick loads it, without waiting for a further change to the store.
@Suite struct ReloadRetryTests {
    /// The real store's loader, whose next `load()` fails once when armed: the moment a transient failure must hit
    /// (after the generation read, during the load) cannot be produced reliably with a real server.
    struct OnceFailingLoad: CredentialSource {
        let loader: CredentialLoader
        let armed = NIOLockedValueBox(false)

        func generation() async throws -> Int64 { try await loader.generation() }
        func load() async throws -> LoadedCredentials {
            if armed.withLockedValue({ armed in defer { armed = false }; return armed }) {
                throw StoreError("PostgreSQL store: connection reset by peer (injected)")
            }
            return try await loader.load()
        }
    }

    @Test(
        "a change whose load failed once is loaded at the next tick, with no further change",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func failedLoadIsRetried() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let instances = try await PostgresInstances(server: server, databasePrefix: "kgw_retry_", nodes: ["gw-a"])
        defer { try? FileManager.default.removeItem(at: instances.directory) }
        let config = instances.configs[0]
        let admin = try await instances.adminWithOnePartner(merchant: "m1", account: "krn:partner:global:account:test:RETRY1")

        let logger = Logger(label: "reload-retry", factory: { _ in SwiftLogNoOpLogHandler() })
        let source = OnceFailingLoad(loader: try await CredentialLoader.open(config: config, environment: [:]))
        // Not run: the test drives the reloads itself, so no poll or notification can bring the change in.
        let service = try await GatewayService.start(config: config, credentials: source, journal: AccessLogJournal(logger: logger), logger: logger, threads: 1)
        #expect(service.runtime.snapshots.current.merchants["m2"] == nil)

        try await admin.addMerchant(id: "m2", partnerID: "acq", account: "krn:partner:global:account:test:RETRY2")
        source.armed.withLockedValue { $0 = true }
        await service.reloadIfChanged()
        #expect(service.runtime.snapshots.current.merchants["m2"] == nil, "the injected failure kept the old snapshot")
        #expect(service.reloadCounts.rejected == 1)

        await service.reloadIfChanged()
        #expect(service.runtime.snapshots.current.merchants["m2"]?.record.status == .active, "the next tick loads the change")
        await service.shutdown()
        (admin.store as? PostgresStore)?.close()
    }
}
