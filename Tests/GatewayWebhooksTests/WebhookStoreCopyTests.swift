import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// `store copy` of a webhook deployment, end to end: in the serialized end-to-end suite, so two gateways never
/// compete for the machine.
extension WebhookEndToEndTests {
    @Test(
        "store copy moves pending events onto PostgreSQL and back with their attempts: the copy delivers them, acknowledges a repeated event id as a duplicate, and every secret stays sealed",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"),
        .timeLimit(.minutes(4)))
    func storeCopied() async throws {
        let database = try await webhookTestDatabase("kgw_webhooks_copy_")
        try await withWebhooks { hooks in
            _ = try await hooks.register()
            let secret = "PLANTEDcopySIGNINGsecret3a9c"
            try await hooks.addKnownKey(id: "copy-key", secret: secret)
            // Received and attempted (the receiver refuses), so the copy has attempts and next times to carry.
            hooks.orders.setDown(true)
            let ids = try await hooks.postAccepted(4, prefix: "copy", keyID: "copy-key", secret: secret)
            try #require(try await hooks.orders.waitFor(count: 4).count >= 1, "no delivery was attempted before the copy")
            try await hooks.stopGateway(SIGTERM)
            #expect(Set(try await hooks.events(state: .pending).map(\.eventID)) == Set(ids))

            let sqlite = hooks.directory.appendingPathComponent("gateway.sqlite").path
            let copied = try await hooks.cli(["store", "copy", "--from", sqlite, "--to", database], withConfig: false)
            #expect(copied.contains("webhook destinations  2") && copied.contains("webhook events        4"), "\(copied)")
            let copy = try #require(try await GatewayConfig.openStore(database) as? any WebhookStore)
            let source = try hooks.admin.webhookStore
            var attempts = 0
            for id in ids {
                #expect(try await copy.webhookDeliveries(eventID: id) == source.webhookDeliveries(eventID: id))
                #expect(try await copy.webhookAttempts(eventID: id) == source.webhookAttempts(eventID: id))
                attempts += try await source.webhookAttempts(eventID: id).count
            }
            #expect(attempts >= 1, "attempts were made before the copy")

            // The gateway on the copy: its destination secret opens, the pending events are delivered, and Klarna's
            // retry of one of them is acknowledged as a duplicate and not delivered again.
            try await hooks.serve(storage: database)
            hooks.orders.setDown(false)
            let delivered = try await hooks.waitForDelivered(hooks.orders, ids: Set(ids))
            #expect(delivered.allSatisfy { $0.verifies(secret: WebhookHarness.ordersSecret) })
            let deadline = ContinuousClock.now + .seconds(30)
            while try await copy.webhookEvents(WebhookEventQuery(state: .delivered)).count < ids.count && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(Set(try await copy.webhookEvents(WebhookEventQuery(state: .delivered)).map(\.eventID)) == Set(ids))
            #expect(try await hooks.postSigned(eventID: ids[0], keyID: "copy-key", secret: secret, port: hooks.webhooksPort) == 200)
            #expect(try await hooks.metric("kgw_webhooks_duplicates_total", reaching: 1) == 1)
            #expect((try await hooks.metric("kgw_webhooks_received_total") ?? 0) == 0, "no event was stored anew")
            try await Task.sleep(for: .milliseconds(300))
            #expect(hooks.orders.received.filter { $0.header("webhook-id") == ids[0] && $0.status == 200 }.count == 1)

            // And back into a new SQLite file, delivered states and all.
            try await hooks.stopGateway(SIGTERM)
            let back = hooks.directory.appendingPathComponent("back.sqlite").path
            try await hooks.cli(["store", "copy", "--from", database, "--to", back], withConfig: false)
            let returned = try #require(try await GatewayConfig.openStore(back) as? any WebhookStore)
            #expect(Set(try await returned.webhookEvents(WebhookEventQuery(state: .delivered)).map(\.eventID)) == Set(ids))
            try await hooks.searchForSecrets()
        }
    }
}
