import Foundation
import GatewayApp
import GatewayCore
import GatewayStore
import GatewayTestSupport
import GatewayVault
import GatewayWebhooks
import Testing

/// `store copy` of the webhook tables: destinations (their secrets sealed), and events in every state with their
/// deliveries and attempts, SQLite → PostgreSQL → SQLite, compared page by page; the copy refuses a repeated event
/// id and hands out a delivery the source had leased.
@Suite struct StoreCopyWebhookTests {
    static let ordersSecret = "whsec_" + Base64.encode(Array("PLANTED-copy-orders-destination-secret".utf8))
    static let signingSecret = "PLANTEDcopySIGNINGkey7b2d"
    static let merchant = "m_own"

    static func event(_ id: String, merchant: String? = merchant, at time: Int64, destinations: [String]) -> NewWebhookEvent {
        NewWebhookEvent(
            event: WebhookEventRecord(
                eventID: id, partnerID: "acq", signingKeyID: "k1", eventType: "payment.request.state-change.completed",
                account: "krn:partner:global:account:test:OWN", merchantID: merchant, receivedAtMicros: time, state: .pending,
                body: Array(#"{"metadata":{"event_id":"\#(id)"},"payload":{"note":"caf\#u{e9}"}}"#.utf8)),
            destinations: destinations)
    }

    /// Saves `new`, claims what is due for `orders` at `now`, and records `state` for `id` (or leaves it leased).
    static func settle(
        _ store: any WebhookStore, _ new: NewWebhookEvent, now: Int64, as state: WebhookDeliveryState?, status: Int?, error: String? = nil,
        next: Int64 = 0
    ) async throws {
        #expect(try await store.saveWebhookEvents([new]) == [true])
        let claims = try await store.claimWebhookDeliveries(owner: "node-a", destination: "orders", nowMicros: now, leaseMicros: 60_000_000, limit: 10)
        let claim = try #require(claims.first { $0.delivery.eventID == new.event.eventID })
        guard let state else { return }
        try await store.completeWebhookDeliveries([WebhookDeliveryOutcome(
            eventID: claim.delivery.eventID, destination: "orders", nodeID: "node-a", attempt: claim.delivery.attempts + 1, state: state,
            nextAttemptMicros: next, status: status, error: error, timeMicros: now + 1)])
    }

    /// The populated store of `StoreCopyTests` plus destinations, a signing key and events in every state: delivered,
    /// retrying, dead, leased to an instance, pending to two destinations, unroutable, unrouted, ids outside ASCII,
    /// and enough events to take several pages.
    static func populatedStore(at path: String, sealer: SecretSealer) async throws -> AdminService {
        let admin = try await StoreCopyTests.populatedStore(at: path, sealer: sealer)
        let client = try TestPKI().issueClient(commonName: "gateway webhooks")
        try await admin.addWebhookDestination(
            name: "orders", url: "https://orders.internal/hooks", secret: Secret(ordersSecret), clientCertificatePEM: client.certificatePEM,
            clientKeyPEM: Secret(client.privateKeyPEM))
        try await admin.addWebhookDestination(name: "ledger", url: "http://127.0.0.1:9/in", secret: nil, clientCertificatePEM: nil, clientKeyPEM: nil)
        try await admin.addWebhookKey(partnerID: "acq", keyID: "k1", secret: Secret(signingSecret))
        let store = try admin.webhookStore
        try await settle(store, event("evt-delivered", at: 1_000, destinations: ["orders"]), now: 2_000, as: .delivered, status: 204)
        try await settle(store, event("evt-retry", at: 1_100, destinations: ["orders"]), now: 2_000, as: .pending, status: 503, next: 9_000)
        try await settle(store, event("évt-dead", at: 1_200, destinations: ["orders"]), now: 2_000, as: .dead, status: nil, error: "connection refused")
        try await settle(store, event("Evt-leased", at: 1_300, destinations: ["orders"]), now: 2_000, as: nil, status: nil)
        _ = try await store.saveWebhookEvents([
            event("evt-pending", at: 1_400, destinations: ["orders", "ledger"]), event("evt-unroutable", merchant: nil, at: 1_500, destinations: ["orders"]),
            event("evt-unrouted", at: 1_600, destinations: []),
        ])
        _ = try await store.saveWebhookEvents((0..<1_050).map { event("bulk-\($0)", at: 3_000 + Int64($0), destinations: ["ledger"]) })
        return admin
    }

    static func everything(_ store: any WebhookStore) async throws -> [WebhookEventCopy] {
        var all: [WebhookEventCopy] = []
        while true {
            let page = try await store.webhookEventCopies(after: all.last?.event.eventID, limit: 400)
            if page.isEmpty { return all }
            all += page
        }
    }

    @Test func webhookEventsAndDestinationsGoThereAndBackWithTheirStates() async throws {
        let directory = try StoreCopyTests.temporaryDirectory()
        let sealer = SecretSealer(ring: .generate())
        let original = try await Self.populatedStore(at: directory.appendingPathComponent("a.sqlite").path, sealer: sealer)
        let source = try original.webhookStore
        let expected = try await Self.everything(source)
        #expect(expected.count == 1_057)
        #expect(Dictionary(grouping: expected, by: \.event.state).mapValues(\.count) == [
            .delivered: 1, .pending: 1_053, .dead: 1, .unroutable: 1, .unrouted: 1,
        ])
        #expect(expected.first { $0.event.eventID == "evt-retry" }?.deliveries == [
            WebhookDeliveryRecord(eventID: "evt-retry", destination: "orders", state: .pending, attempts: 1, nextAttemptMicros: 9_000, lastStatus: 503),
        ])

        let middleLocation = try await StoreCopyTests.postgresDatabase() ?? directory.appendingPathComponent("b.sqlite").path
        let middle = try await GatewayConfig.openStore(middleLocation)
        let report = try await StoreCopy.copy(from: original.store, to: middle)
        #expect(report.webhookDestinations == 2 && report.webhookEvents == 1_057 && report.webhookDeliveries == 1_056)
        let middleWebhooks = try #require(middle as? any WebhookStore)
        #expect(try await Self.everything(middleWebhooks) == expected)
        #expect(try await middleWebhooks.webhookDestinations() == source.webhookDestinations())

        // The copy serves: its destination secrets and signing key open with the same ring, as sealed.
        let loaded = try await CredentialLoader(store: middle, sealer: sealer).loadWebhookDirectory(routesPath: nil)
        #expect(loaded.destinations["orders"]?.secret?.exposedValue == Self.ordersSecret)
        #expect(loaded.destinations["orders"]?.clientKeyPEM != nil && loaded.destinations["ledger"]?.secret == nil)
        #expect(loaded.keys.secret(partner: "acq", keyID: "k1")?.exposedValue == Self.signingSecret)

        // Back again into a new SQLite file, before the middle store is used.
        let back = try await GatewayConfig.openStore(directory.appendingPathComponent("c.sqlite").path)
        _ = try await StoreCopy.copy(from: middle, to: back)
        #expect(try await Self.everything(try #require(back as? any WebhookStore)) == expected)

        // A repeat of a copied event id is a duplicate, whatever its state; a new one is not.
        #expect(try await middleWebhooks.saveWebhookEvents([
            Self.event("evt-delivered", at: 5_000, destinations: ["orders"]), Self.event("evt-unroutable", at: 5_000, destinations: ["orders"]),
            Self.event("evt-new", at: 5_000, destinations: ["orders"]),
        ]) == [false, false, true])
        // The delivery the source had leased to node-a is free in the copy: due, it is handed out at once.
        let claimed = try await middleWebhooks.claimWebhookDeliveries(
            owner: "node-b", destination: "orders", nowMicros: 2_001, leaseMicros: 60_000_000, limit: 10)
        #expect(Set(claimed.map(\.delivery.eventID)) == ["Evt-leased", "evt-pending"])
        #expect(try await source.claimWebhookDeliveries(owner: "node-b", destination: "orders", nowMicros: 2_001, leaseMicros: 1, limit: 10)
            .map(\.delivery.eventID) == ["evt-pending"], "in the source it is still leased")

        // A destination holding webhook records only is refused too.
        let webhooksOnly = try await SQLiteStore.open(path: directory.appendingPathComponent("d.sqlite").path)
        _ = try await webhooksOnly.saveWebhookEvents([Self.event("evt-x", at: 1, destinations: [])])
        let error = await #expect(throws: AdminError.self) { _ = try await StoreCopy.copy(from: original.store, to: webhooksOnly) }
        #expect(error?.message.contains("not empty") == true)

        // Sealed in every copy: no planted secret in any store file or in the report.
        var haystacks = [report.description]
        for name in ["a.sqlite", "a.sqlite-wal", "c.sqlite", "c.sqlite-wal", "b.sqlite", "b.sqlite-wal"] {
            if let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) { haystacks.append(String(decoding: data, as: UTF8.self)) }
        }
        for secret in [Self.ordersSecret, Self.signingSecret, "PLANTED"] {
            for (index, haystack) in haystacks.enumerated() { #expect(!haystack.contains(secret), "\(secret.prefix(8))… in output \(index)") }
        }
    }

    @Test func webhookVerificationNamesTheEventThatDiffers() async throws {
        let directory = try StoreCopyTests.temporaryDirectory()
        let sealer = SecretSealer(ring: .generate())
        let original = try await Self.populatedStore(at: directory.appendingPathComponent("a.sqlite").path, sealer: sealer)
        let other = try await SQLiteStore.open(path: directory.appendingPathComponent("b.sqlite").path)
        _ = try await StoreCopy.copy(from: original.store, to: other)
        _ = try await other.replayWebhookDeliveries(eventID: "évt-dead", destination: nil, includeDelivered: false, nowMicros: 7)
        let error = await #expect(throws: AdminError.self) {
            try await StoreCopy.verifyWebhooks(source: try original.webhookStore, destination: other)
        }
        #expect(error?.message.contains("event évt-dead differs") == true, "\(String(describing: error))")
    }
}
