import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayProxy
import GatewayTestSupport
import Logging
import NIOPosix
import Testing

/// A policy applied through the admin API of one of two instances sharing PostgreSQL (polling off): the other
/// instance serves it after the change notification, a call through it is refused by the new grants, and a rollback
/// and a return to the file through the API reach it the same way.
@Suite struct AdminAPIPolicyPostgresTests {
    @Test(.enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func aPolicyAppliedOnOneInstanceIsEnforcedByTheOther() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let instances = try await PostgresInstances(server: server, databasePrefix: "kgw_policy_", nodes: ["gw-a", "gw-b"])
        defer { try? FileManager.default.removeItem(at: instances.directory) }
        let configs = instances.configs
        let admin = try await instances.adminWithOnePartner(merchant: "m1", account: "krn:partner:global:account:test:PGP1")
        let callerToken = try #require(try await admin.addCaller(id: "checkout").token?.rendered.exposedValue)
        let security = try await admin.addAdmin(name: "sec", role: .security).token.exposedValue
        let operatorToken = try await admin.addAdmin(name: "ops", role: .operator).token.exposedValue

        let logger = Logger(label: "admin-api-policy-postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        var services: [GatewayService] = []
        for config in configs {
            services.append(try await GatewayService.start(
                config: config, credentials: try await CredentialLoader.open(config: config, environment: [:]), journal: AccessLogJournal(logger: logger),
                logger: logger, threads: 1))
        }
        let runners = services.map { service in Task { _ = try? await service.run() } }
        let api = AdminAPI(
            service: admin, gateway: services[0], audit: nil, logger: logger, backoff: AdminBackoff(base: .milliseconds(5), ceiling: .milliseconds(20)))
        let listener = try await AdminServer.start(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, routes: AdminRoutes(api: api)
        ) { Readiness(ready: true, json: "{}") }
        let client = TestHTTPClient(port: listener.port, tls: nil)
        let other = TestHTTPClient(port: services[1].ports["loopback"] ?? 0, tls: nil)
        func callThroughB() async throws -> TestHTTPResponse {
            try await other.send(
                "GET", "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:pg-1", headers: [("Authorization", "Bearer \(callerToken)")])
        }
        let generation = try await admin.store.generation()
        try await waitUntil("both instances loaded the store") { services.allSatisfy { $0.snapshotGeneration >= generation } }
        // Granted by the file: forwarded (to an upstream that is not there), not refused.
        #expect(try await callThroughB().errorCode != "GATEWAY_FORBIDDEN")

        let path = "/admin/v1/policies/access"
        let fileVersion = try #require(try await client.send("GET", path, headers: [("Authorization", "Bearer \(security)")]).header("ETag"))
        let body = JSONValue.object([("yaml", .string(AdminAPIPolicyApplyTests.withoutCheckout))]).text
        let applied = try await client.send("PUT", path, headers: [("Authorization", "Bearer \(security)"), ("If-Match", fileVersion)], body: Array(body.utf8))
        #expect(applied.status == 200)
        let restricted = try #require(applied.header("ETag"))
        try await waitUntil("instance b serves the new access policy", timeout: .seconds(30)) {
            services[1].runtime.snapshots.current.access.callers["checkout"] == nil
        }
        #expect(try await callThroughB().errorCode == "GATEWAY_FORBIDDEN")
        // Instance b's own API would answer the same version: it reads the store.
        #expect(try await admin.newestPolicyVersion(.access)?.version == restricted)

        // A rate limit applied by an operator reaches b too; a stale If-Match is refused on PostgreSQL as on SQLite.
        let limitsPath = "/admin/v1/policies/rate-limits"
        let limitsVersion = try #require(try await client.send("GET", limitsPath, headers: [("Authorization", "Bearer \(operatorToken)")]).header("ETag"))
        let tight = JSONValue.object([("yaml", .string("merchant:\n  test:\n    default: {rate: 50, burst: 50}\ncaller: {rate: 0.01, burst: 2}\n"))]).text
        #expect(try await client.send(
            "PUT", limitsPath, headers: [("Authorization", "Bearer \(operatorToken)"), ("If-Match", restricted)], body: Array(tight.utf8)).status == 412)
        #expect(try await client.send(
            "PUT", limitsPath, headers: [("Authorization", "Bearer \(operatorToken)"), ("If-Match", limitsVersion)], body: Array(tight.utf8)).status == 200)
        try await waitUntil("instance b serves the new rate limits", timeout: .seconds(30)) {
            services[1].runtime.snapshots.current.rateLimits.caller?.burst == 2
        }

        // Back to the file's grants by applying its text again, then a rollback to the restricted version: b follows each.
        let fileBody = JSONValue.object([("yaml", .string(GatewayHarness.defaultAccess))]).text
        let reopened = try await client.send(
            "PUT", path, headers: [("Authorization", "Bearer \(security)"), ("If-Match", restricted)], body: Array(fileBody.utf8))
        #expect(reopened.status == 200 && reopened.header("ETag") == fileVersion)
        try await waitUntil("instance b grants checkout again", timeout: .seconds(30)) { services[1].runtime.snapshots.current.access.callers["checkout"] != nil }
        let rollback = JSONValue.object([("version", .string(restricted))]).text
        let rolledBack = try await client.send(
            "POST", path + "/rollback", headers: [("Authorization", "Bearer \(security)"), ("If-Match", fileVersion)], body: Array(rollback.utf8))
        #expect(rolledBack.status == 200 && rolledBack.header("ETag") == restricted)
        try await waitUntil("instance b serves the rolled-back policy", timeout: .seconds(30)) {
            services[1].runtime.snapshots.current.access.callers["checkout"] == nil
        }
        let history = try await client.send("GET", path + "/history", headers: [("Authorization", "Bearer \(security)")])
        #expect(history.json["versions"]?.arrayValue?.compactMap { $0["version"]?.stringValue } == [restricted, fileVersion, restricted])
        // Back to the file on every instance: b grants checkout again, as its own file says.
        #expect(try await client.send("DELETE", path, headers: [("Authorization", "Bearer \(security)"), ("If-Match", restricted)]).status == 200)
        try await waitUntil("instance b serves the file's grants again", timeout: .seconds(30)) {
            services[1].runtime.snapshots.current.access.callers["checkout"] != nil
        }
        #expect(try await callThroughB().errorCode != "GATEWAY_FORBIDDEN")

        try await client.close()
        try await other.close()
        await listener.stop()
        for runner in runners {
            runner.cancel()
            await runner.value
        }
        (admin.store as? PostgresStore)?.close()
    }
}
