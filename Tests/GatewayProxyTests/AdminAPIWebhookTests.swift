import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// The webhook resources of the admin API over real TLS: destinations by reference, events with their deliveries'
/// state, every role reading, refusals as documented, and no webhook secret (a destination's signing secret or
/// client key, a partner's signing key) nor an event's body in any answer.
@Suite struct AdminAPIWebhookTests {
    static func random(_ prefix: String) -> String {
        prefix + (0..<32).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
    }

    @Test func destinationsAndEventsAreReadWithoutASecret() async throws {
        try await withAdminAPI(tls: true) { api in
            let admin = api.gw.admin
            let store = try admin.webhookStore
            let destinationSecret = Self.random("whsec_PLANTED")
            let signingSecret = Self.random("PLANTEDsigning")
            let bodyMarker = Self.random("PLANTEDbody")
            let identity = try TestPKI().issueClient(commonName: "orders receiver")
            try await admin.addWebhookKey(partnerID: "acq", keyID: "key-1", secret: Secret(signingSecret))
            try await admin.addWebhookDestination(
                name: "orders", url: "https://hooks.example/orders", secret: Secret(destinationSecret), clientCertificatePEM: identity.certificatePEM,
                clientKeyPEM: Secret(identity.privateKeyPEM))
            try await admin.addWebhookDestination(name: "sink", url: "http://127.0.0.1:9/sink", secret: nil, clientCertificatePEM: nil, clientKeyPEM: nil)

            // Three events, oldest first: routed to m1 (delivered to one destination, dead at the other), to m2 (pending),
            // and one whose account no merchant holds.
            let now = UTCTime.nowMicros()
            func event(_ id: String, merchant: String?, account: String, at time: Int64) -> WebhookEventRecord {
                WebhookEventRecord(
                    eventID: id, partnerID: "acq", signingKeyID: "key-1", eventType: "payment.transaction.captured", account: account, merchantID: merchant,
                    receivedAtMicros: time, state: .pending, body: Array(#"{"metadata":{"event_id":"\#(id)"},"marker":"\#(bodyMarker)"}"#.utf8))
            }
            let accounts = try await [admin.showMerchant(id: "m1").account.rawValue, admin.showMerchant(id: "m2").account.rawValue]
            _ = try await store.saveWebhookEvents([
                NewWebhookEvent(event: event("ev-1", merchant: "m1", account: accounts[0], at: now - 3_000_000), destinations: ["orders", "sink"]),
                NewWebhookEvent(event: event("ev-2", merchant: "m2", account: accounts[1], at: now - 2_000_000), destinations: ["orders"]),
                NewWebhookEvent(event: event("ev-3", merchant: nil, account: "krn:partner:global:account:test:NOBODY", at: now - 1_000_000), destinations: []),
            ])
            try await store.completeWebhookDeliveries([
                WebhookDeliveryOutcome(eventID: "ev-1", destination: "orders", nodeID: "n", attempt: 1, state: .delivered, nextAttemptMicros: now, status: 204, error: nil, timeMicros: now),
                WebhookDeliveryOutcome(
                    eventID: "ev-1", destination: "sink", nodeID: "n", attempt: 8, state: .dead, nextAttemptMicros: now, status: nil, error: "connection refused",
                    timeMicros: now),
            ])

            var answers = ""
            func read(_ path: String, as role: AdminRole? = .viewer) async throws -> TestHTTPResponse {
                let answer = try await api.send("GET", path, as: role)
                answers += answer.text + answer.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
                return answer
            }

            let destinations = try await read("/admin/v1/webhooks/destinations")
            #expect(destinations.status == 200)
            let listed = destinations.json["destinations"]?.arrayValue ?? []
            #expect(listed.map { $0["name"]?.stringValue } == ["orders", "sink"])
            let orders = try #require(listed.first)
            #expect(orders["url"]?.stringValue == "https://hooks.example/orders")
            #expect(orders["secret"]?["credential_id"]?.stringValue == "webhook-destination:orders:secret", "\(orders)")
            #expect(orders["secret"]?["version"]?.intValue == 1 && orders["client_key"]?["version"]?.intValue == 1)
            #expect(orders["client_certificate_fingerprint"]?.stringValue == identity.fingerprint)
            #expect(listed.last?["secret"] == .null && listed.last?["client_key"] == .null && listed.last?["client_certificate_fingerprint"] == .null)

            let events = try await read("/admin/v1/webhooks/events")
            #expect(events.status == 200)
            let all = events.json["events"]?.arrayValue ?? []
            #expect(all.map { $0["event_id"]?.stringValue } == ["ev-3", "ev-2", "ev-1"], "newest first")
            #expect(all.map { $0["state"]?.stringValue } == ["unroutable", "pending", "dead"])
            #expect(all.first?["merchant_id"] == .null && all.first?["deliveries"]?.arrayValue?.isEmpty == true)
            let first = try #require(all.last)
            #expect(first["merchant_id"]?.stringValue == "m1" && first["signing_key_id"]?.stringValue == "key-1" && first["partner_id"]?.stringValue == "acq")
            #expect(first["received"]?.stringValue == UTCTime.timestamp(micros: now - 3_000_000))
            let deliveries = first["deliveries"]?.arrayValue ?? []
            let delivered = try #require(deliveries.first { $0["destination"]?.stringValue == "orders" })
            #expect(delivered["state"]?.stringValue == "delivered" && delivered["last_status"]?.intValue == 204 && delivered["next_attempt"] == .null)
            let dead = try #require(deliveries.first { $0["destination"]?.stringValue == "sink" })
            #expect(dead["state"]?.stringValue == "dead" && dead["attempts"]?.intValue == 8 && dead["last_error"]?.stringValue == "connection refused")
            let pending = try #require(all[1]["deliveries"]?.arrayValue?.first)
            #expect(pending["state"]?.stringValue == "pending" && pending["attempts"]?.intValue == 0 && pending["next_attempt"]?.stringValue != nil)

            // Signing keys by id only, with the partner filter.
            let otherSecret = Self.random("PLANTEDliveSigning")
            try await admin.addWebhookKey(partnerID: "acq_live", keyID: "live-key", secret: Secret(otherSecret))
            let keys = try await read("/admin/v1/webhooks/keys")
            #expect(keys.status == 200)
            #expect(keys.json["keys"]?.arrayValue?.map { "\($0["partner_id"]?.stringValue ?? "?") \($0["key_id"]?.stringValue ?? "?") \($0["sealed_under"]?.intValue ?? 0)" }
                == ["acq key-1 1", "acq_live live-key 1"])
            #expect(try await read("/admin/v1/webhooks/keys?partner=acq_live").json["keys"]?.arrayValue?.map { $0["key_id"]?.stringValue } == ["live-key"])
            #expect(try await read("/admin/v1/webhooks/keys?partner=ghost").json["keys"]?.arrayValue?.isEmpty == true)
            #expect(try await read("/admin/v1/webhooks/keys?partner=").errorCode == "GATEWAY_BAD_REQUEST")

            // Filters.
            #expect(try await read("/admin/v1/webhooks/events?merchant=m2").json["events"]?.arrayValue?.map { $0["event_id"]?.stringValue } == ["ev-2"])
            #expect(try await read("/admin/v1/webhooks/events?state=dead").json["events"]?.arrayValue?.map { $0["event_id"]?.stringValue } == ["ev-1"])
            #expect(try await read("/admin/v1/webhooks/events?limit=1").json["events"]?.arrayValue?.map { $0["event_id"]?.stringValue } == ["ev-3"])
            #expect(try await read("/admin/v1/webhooks/events?merchant=m3").json["events"]?.arrayValue?.isEmpty == true)

            // Refusals: each a 400 recorded as a refusal; reads are not recorded.
            for query in ["state=lost", "limit=0", "limit=101", "limit=x", "merchant="] {
                let refused = try await read("/admin/v1/webhooks/events?" + query)
                #expect(refused.status == 400 && refused.errorCode == "GATEWAY_BAD_REQUEST", "\(query)")
                let records = try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id"))
                #expect(records.map(\.0) == ["refusal"] && records.first?.3 == "GATEWAY_BAD_REQUEST", "\(query): \(records)")
            }
            #expect(try await api.auditRecords(events.header("Klarna-Gateway-Request-Id")).isEmpty)
            #expect(try await read("/admin/v1/webhooks/events", as: nil).errorCode == "GATEWAY_UNAUTHENTICATED")
            #expect(try await read("/admin/v1/webhooks/destinations", as: nil).status == 401)
            #expect(try await api.send("DELETE", "/admin/v1/webhooks/destinations", as: .security).status == 405)

            // Every role reads both; nothing of a secret or of an event's body is in any answer.
            answers += try await api.readAsEveryRole(["/admin/v1/webhooks/destinations", "/admin/v1/webhooks/events", "/admin/v1/webhooks/keys"])
            try await api.expectNoSecret(in: answers)
            let keyLines = identity.privateKeyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.map(String.init)
            for secret in [destinationSecret, signingSecret, otherSecret, bodyMarker] + keyLines {
                let leaked = answers.contains(secret)
                #expect(!leaked, "a webhook secret or an event's body is in an answer")
            }
        }
    }
}
