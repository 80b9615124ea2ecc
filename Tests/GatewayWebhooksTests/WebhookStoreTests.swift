import Foundation
import GatewayCore
import GatewayPostgres
import GatewayStore
import GatewayTestSupport
import Testing

/// The webhook tables of both stores, through the protocol only: de-duplication by event id, claims and leases
/// (taken over once expired, never while held; disjoint when instances claim at once), outcomes that cannot undo a
/// settled delivery, replay, pruning. Time is passed in, so leases expire without waiting.
@Suite("Webhook store")
struct WebhookStoreTests {
    static func event(_ id: String, merchant: String? = "m1", destinations: [String] = ["orders", "ledger"], at time: Int64 = 1_000) -> NewWebhookEvent {
        NewWebhookEvent(
            event: WebhookEventRecord(
                eventID: id, partnerID: "acq", signingKeyID: "key-1", eventType: "payment.request.state-change.completed",
                account: "krn:partner:global:account:test:M1", merchantID: merchant, receivedAtMicros: time, state: .pending, body: Array("{\"id\":\"\(id)\"}".utf8)),
            destinations: destinations)
    }

    static func outcome(_ claim: ClaimedWebhookDelivery, node: String, state: WebhookDeliveryState, status: Int?, at time: Int64) -> WebhookDeliveryOutcome {
        WebhookDeliveryOutcome(
            eventID: claim.event.eventID, destination: claim.delivery.destination, nodeID: node, attempt: claim.delivery.attempts + 1, state: state,
            nextAttemptMicros: time + 100, status: status, error: status == nil ? "connection refused" : nil, timeMicros: time)
    }

    func exercise(_ store: any WebhookStore) async throws {
        // Stored once: a repeat of the id (in the same batch or later) is reported and writes nothing.
        #expect(try await store.saveWebhookEvents([Self.event("e1"), Self.event("e1"), Self.event("e2", merchant: nil)]) == [true, false, true])
        #expect(try await store.saveWebhookEvents([Self.event("e1")]) == [false])
        #expect(try await store.webhookEvent(id: "e2")?.state == .unroutable)
        #expect(try await store.webhookDeliveries(eventID: "e2").isEmpty)
        #expect(try await store.webhookEvents(WebhookEventQuery(state: .unroutable)).map(\.eventID) == ["e2"])
        #expect(try await store.webhookEvent(id: "e1")?.body == Array("{\"id\":\"e1\"}".utf8))

        // A claim holds the delivery for its lease; another instance gets it only after the lease ran out.
        let first = try await store.claimWebhookDeliveries(owner: "a", destination: "orders", nowMicros: 2_000, leaseMicros: 500, limit: 10)
        #expect(first.map(\.event.eventID) == ["e1"])
        #expect(try await store.claimWebhookDeliveries(owner: "b", destination: "orders", nowMicros: 2_400, leaseMicros: 500, limit: 10).isEmpty)
        let takenOver = try await store.claimWebhookDeliveries(owner: "b", destination: "orders", nowMicros: 2_600, leaseMicros: 500, limit: 10)
        #expect(takenOver.map(\.event.eventID) == ["e1"], "a killed instance's claim is taken over after its lease")

        // b delivers; a's late failure (from the claim b took over) cannot make it pending again.
        try await store.completeWebhookDeliveries([Self.outcome(takenOver[0], node: "b", state: .delivered, status: 200, at: 2_700)])
        try await store.completeWebhookDeliveries([Self.outcome(first[0], node: "a", state: .pending, status: 503, at: 2_800)])
        #expect(try await store.webhookDeliveries(eventID: "e1").first { $0.destination == "orders" }?.state == .delivered)
        #expect(try await store.webhookAttempts(eventID: "e1").map(\.nodeID) == ["b", "a"])
        #expect(try await store.webhookEvent(id: "e1")?.state == .pending, "ledger is still pending")
        #expect(try await store.oldestPendingWebhookDeliveries() == ["ledger": 1_000])

        // ledger fails to the end: dead, then replayed, then delivered.
        let ledger = try await store.claimWebhookDeliveries(owner: "a", destination: "ledger", nowMicros: 3_000, leaseMicros: 500, limit: 10)
        try await store.completeWebhookDeliveries([Self.outcome(ledger[0], node: "a", state: .dead, status: 500, at: 3_100)])
        #expect(try await store.webhookEvent(id: "e1")?.state == .dead)
        #expect(try await store.replayWebhookDeliveries(eventID: nil, destination: "orders", includeDelivered: false, nowMicros: 4_000) == 0)
        #expect(try await store.replayWebhookDeliveries(eventID: nil, destination: nil, includeDelivered: false, nowMicros: 4_000) == 1)
        #expect(try await store.webhookEvent(id: "e1")?.state == .pending)
        let again = try await store.claimWebhookDeliveries(owner: "a", destination: "ledger", nowMicros: 4_000, leaseMicros: 500, limit: 10)
        #expect(again.map(\.delivery.attempts) == [0])
        try await store.completeWebhookDeliveries([Self.outcome(again[0], node: "a", state: .delivered, status: 204, at: 4_100)])
        #expect(try await store.webhookEvent(id: "e1")?.state == .delivered)

        // A restarted instance takes its own leases back at once.
        _ = try await store.saveWebhookEvents([Self.event("e3", destinations: ["orders"], at: 5_000)])
        #expect(try await store.claimWebhookDeliveries(owner: "a", destination: "orders", nowMicros: 5_000, leaseMicros: 60_000, limit: 10).count == 1)
        try await store.releaseWebhookLeases(owner: "a")
        #expect(try await store.claimWebhookDeliveries(owner: "a", destination: "orders", nowMicros: 5_001, leaseMicros: 60_000, limit: 10).count == 1)

        // Several outcomes in one transaction (the worker's group commit), with and without a status.
        _ = try await store.saveWebhookEvents([Self.event("e4", destinations: ["audit"], at: 6_000), Self.event("e5", destinations: ["audit"], at: 6_000)])
        let pair = try await store.claimWebhookDeliveries(owner: "a", destination: "audit", nowMicros: 6_000, leaseMicros: 500, limit: 10)
        #expect(pair.count == 2)
        try await store.completeWebhookDeliveries([
            Self.outcome(pair[0], node: "a", state: .delivered, status: 200, at: 6_100), Self.outcome(pair[1], node: "a", state: .pending, status: nil, at: 6_100),
        ])
        let states = try await [store.webhookEvent(id: pair[0].event.eventID)?.state, store.webhookEvent(id: pair[1].event.eventID)?.state]
        #expect(states == [.delivered, .pending])
        let failed = try await store.webhookDeliveries(eventID: pair[1].event.eventID)
        #expect(failed.first?.lastStatus == nil && failed.first?.lastError == "connection refused" && failed.first?.attempts == 1)
        #expect(try await store.webhookAttempts(eventID: pair[0].event.eventID).first?.status == 200)

        // Pruning keeps anything pending and anything newer than the cut.
        #expect(try await store.pruneWebhookEvents(receivedBefore: 4_999) == 2)
        #expect(try await store.webhookEvent(id: "e1") == nil)
        #expect(try await store.webhookEvent(id: "e3") != nil)
        #expect(try await store.webhookAttempts(eventID: "e1").isEmpty)
    }

    @Test("SQLite: de-duplication, leases, settled outcomes, replay, prune")
    func sqlite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-webhook-store-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("store.sqlite").path)
        try await exercise(store)
    }

    @Test(
        "PostgreSQL: the same, and instances claiming at once (FOR UPDATE SKIP LOCKED) never take the same delivery",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func postgres() async throws {
        let url = try await webhookTestDatabase("kgw_webhooks_")
        let store = try await PostgresStore.open(url: url)
        defer { store.close() }
        try await exercise(store)
        // 200 deliveries, four instances claiming in parallel: every delivery claimed once.
        _ = try await store.saveWebhookEvents((0..<200).map { Self.event("bulk-\($0)", destinations: ["bulk"], at: 10_000) })
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for node in 0..<4 {
                group.addTask {
                    var mine: [String] = []
                    while true {
                        let batch = try await store.claimWebhookDeliveries(owner: "node-\(node)", destination: "bulk", nowMicros: 20_000, leaseMicros: 1_000_000, limit: 7)
                        if batch.isEmpty { return mine }
                        mine += batch.map(\.event.eventID)
                    }
                }
            }
            var all: [String] = []
            for try await mine in group { all += mine }
            return all
        }
        #expect(claimed.count == 200 && Set(claimed).count == 200, "claimed \(claimed.count), distinct \(Set(claimed).count)")
    }
}
