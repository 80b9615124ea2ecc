import GatewayCore
import GatewayPolicy
import Testing

/// `policies/webhooks.yaml` as the loader reads it: every problem names its line, and a valid file routes.
@Suite("Webhook routes policy")
struct WebhookRoutesPolicyTests {
    @Test("problems name their lines; unknown destinations are refused when the store's are known")
    func linesNamed() {
        let yaml = """
            routes:
              - events: ["payment.*"]
                merchants: ["*"]
                destinations: [orders]
              - events: ["pay*"]
                merchants: ["group:"]
                destinations: [nowhere]
              - event: [typo]
            """
        do {
            _ = try PolicyLoader.webhookRoutes(yaml: yaml, source: "webhooks.yaml", knownDestinations: ["orders"])
            Issue.record("the file has problems")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("webhooks.yaml: "))
            #expect(text.contains("line 5: event pattern 'pay*'"), "\(text)")
            #expect(text.contains("line 5: empty merchant selector"), "\(text)")
            #expect(text.contains("line 5: no destination named 'nowhere'"), "\(text)")
            #expect(text.contains("line 8: unknown key 'event'"), "\(text)")
        }
    }

    @Test("the shipped example and an empty file route nothing; a valid file routes")
    func valid() throws {
        #expect(try PolicyLoader.webhookRoutes(yaml: "routes: []\n", source: "x", knownDestinations: []).routes.isEmpty)
        #expect(try PolicyLoader.webhookRoutes(yaml: "", source: "x", knownDestinations: []).routes.isEmpty)
        let table = try PolicyLoader.webhookRoutes(
            yaml: "routes:\n  - {events: payment.*, merchants: '*', destinations: [orders, ledger]}\n", source: "x", knownDestinations: ["orders", "ledger"])
        let merchant = MerchantRecord(id: "m1", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M1")!)
        #expect(table.destinations(eventType: "payment.transaction.captured", merchant: merchant) == ["orders", "ledger"])
        #expect(table.routes.first?.line == 2)
    }
}
