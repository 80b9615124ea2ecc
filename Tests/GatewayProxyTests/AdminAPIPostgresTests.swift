import Foundation
@testable import GatewayApp
import GatewayAudit
import GatewayCore
import GatewayPostgres
import GatewayProxy
import GatewayTestSupport
import Logging
import NIOPosix
import Testing

/// The admin API on one of two instances sharing PostgreSQL: its change reaches the other instance by
/// LISTEN/NOTIFY (polling off), paging, search and If-Match behave as on SQLite, and its audit records, written to
/// the PostgreSQL trail, are found by request id.
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
        // Instance a records in a trail in the same database, as `audit.path: postgres://…` configures it.
        let credentials = try await CredentialLoader.open(config: configs[0], environment: [:])
        let writer = AuditWriter(
            path: configs[0].storage, nodeID: configs[0].nodeID, signer: try await AuditSigningKey.loadOrCreate(store: credentials.store, sealer: credentials.sealer),
            logger: logger)
        var services: [GatewayService] = []
        for (index, config) in configs.enumerated() {
            services.append(try await GatewayService.start(
                config: config, credentials: index == 0 ? credentials : try await CredentialLoader.open(config: config, environment: [:]),
                journal: index == 0 ? JournalChain([writer, AccessLogJournal(logger: logger)]) : AccessLogJournal(logger: logger), logger: logger, threads: 1))
        }
        let runners = services.map { service in Task { _ = try? await service.run() } }
        let api = AdminAPI(
            service: admin, gateway: services[0], audit: AdminAuditTrail(store: configs[0].storage, writer: writer), logger: logger, backoff: AdminBackoff(base: .milliseconds(5), ceiling: .milliseconds(20)))
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

        // The suspension's intent and outcome, read back from the PostgreSQL trail through the API.
        await writer.flush()
        let requestID = try #require(suspended.header("Klarna-Gateway-Request-Id"))
        let records = try await client.send("GET", "/admin/v1/audit/records?request_id=\(requestID)", headers: [bearer])
        #expect(records.status == 200)
        #expect(records.json["records"]?.arrayValue?.compactMap { $0["phase"]?.stringValue } == ["intent", "outcome"])
        let found = records.json["records"]?.arrayValue ?? []
        #expect(found.compactMap { $0["node_id"]?.stringValue } == ["gw-a", "gw-a"])
        #expect(found.compactMap { $0["merchant_id"]?.stringValue } == ["m7", "m7"])
        let refusals = try await client.send("GET", "/admin/v1/audit/records?error_code=GATEWAY_PRECONDITION_FAILED&limit=1", headers: [bearer])
        // The tail reads the same trail: the newest two are the resume's refusal (412) after the suspension's outcome,
        // and from the cursor before them it answers them again in the same shape as audit/records.
        let tail = try await client.send("GET", "/admin/v1/audit/tail?limit=2", headers: [bearer])
        #expect(tail.json["records"]?.arrayValue?.compactMap { $0["phase"]?.stringValue } == ["outcome", "refusal"])
        let resumed = try await client.send("GET", "/admin/v1/audit/records?limit=500", headers: [bearer]).json["records"]?.arrayValue ?? []
        #expect(tail.json["records"]?.arrayValue == Array(resumed.suffix(2)))
        #expect(try await client.send("GET", "/admin/v1/audit/tail?after=" + (tail.json["next_cursor"]?.stringValue ?? "-"), headers: [bearer])
            .json["records"]?.arrayValue?.isEmpty == true)
        #expect(refusals.json["records"]?.arrayValue?.count == 1)
        let status = try await client.send("GET", "/admin/v1/audit/status", headers: [bearer])
        #expect(status.json["healthy"]?.boolValue == true)
        #expect((status.json["last_seq"]?.intValue ?? 0) >= 3)
        // The traffic summary reads the same PostgreSQL trail; its records here are all admin requests, not calls.
        let traffic = try await client.send("GET", "/admin/v1/audit/traffic?minutes=60", headers: [bearer])
        #expect(traffic.status == 200)
        #expect(traffic.json["calls"]?.intValue == 0)
        #expect(traffic.json["truncated"]?.boolValue == false)

        // Webhooks read from PostgreSQL's tables: references only, deliveries' state, filters, no secret.
        let destinationSecret = AdminAPIWebhookTests.random("PLANTEDpgDestination")
        let signingSecret = AdminAPIWebhookTests.random("PLANTEDpgSigning")
        try await admin.addWebhookDestination(name: "orders", url: "https://hooks.example/orders", secret: Secret(destinationSecret), clientCertificatePEM: nil, clientKeyPEM: nil)
        try await admin.addWebhookKey(partnerID: "acq", keyID: "pg-key", secret: Secret(signingSecret))
        let webhooks = try admin.webhookStore
        let received = UTCTime.nowMicros()
        _ = try await webhooks.saveWebhookEvents((1...2).map { index in
            NewWebhookEvent(
                event: WebhookEventRecord(
                    eventID: "pg-ev\(index)", partnerID: "acq", signingKeyID: "pg-key", eventType: "payment.transaction.captured",
                    account: "krn:partner:global:account:test:PGA\(index)", merchantID: "m\(index)", receivedAtMicros: received + Int64(index), state: .pending,
                    body: Array(signingSecret.utf8)), destinations: ["orders"])
        })
        try await webhooks.completeWebhookDeliveries([
            WebhookDeliveryOutcome(eventID: "pg-ev1", destination: "orders", nodeID: "gw-a", attempt: 1, state: .delivered, nextAttemptMicros: received, status: 200, error: nil, timeMicros: received)
        ])
        let destinations = try await client.send("GET", "/admin/v1/webhooks/destinations", headers: [bearer])
        #expect(destinations.json["destinations"]?.arrayValue?.first?["secret"]?["credential_id"]?.stringValue == "webhook-destination:orders:secret")
        let keys = try await client.send("GET", "/admin/v1/webhooks/keys?partner=acq", headers: [bearer])
        #expect(keys.json["keys"]?.arrayValue?.compactMap { $0["key_id"]?.stringValue } == ["pg-key"])
        let events = try await client.send("GET", "/admin/v1/webhooks/events", headers: [bearer])
        #expect(events.json["events"]?.arrayValue?.compactMap { $0["event_id"]?.stringValue } == ["pg-ev2", "pg-ev1"])
        #expect(events.json["events"]?.arrayValue?.compactMap { $0["deliveries"]?.arrayValue?.first?["state"]?.stringValue } == ["pending", "delivered"])
        let delivered = try await client.send("GET", "/admin/v1/webhooks/events?state=delivered&merchant=m1", headers: [bearer])
        #expect(delivered.json["events"]?.arrayValue?.compactMap { $0["event_id"]?.stringValue } == ["pg-ev1"])
        let pending = try await client.send("GET", "/admin/v1/webhooks/events?state=pending", headers: [bearer])
        #expect(pending.json["events"]?.arrayValue?.compactMap { $0["event_id"]?.stringValue } == ["pg-ev2"])
        for answer in [destinations, keys, events, delivered, pending] {
            let leaked = answer.text.contains(destinationSecret) || answer.text.contains(signingSecret)
            #expect(answer.status == 200 && !leaked, "a webhook secret or an event's body in an answer")
        }

        try await client.close()
        await listener.stop()
        for runner in runners {
            runner.cancel()
            await runner.value
        }
        await writer.shutdown()
        (admin.store as? PostgresStore)?.close()
    }
}
