import Crypto
import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import GatewayWebhooks
import Testing

/// Webhook changes through the admin API over real TLS, on the harness's SQLite store and journal: destinations
/// added, replaced and removed under their `ETag`, signing keys added, rotated at Klarna (the harness's simulator)
/// and removed, an event shown with its attempts and replayed. Roles, refusals, the audit records, the store's
/// state after each, and no uploaded secret (nor an event's body) in any answer, log line or audit record.
@Suite struct AdminAPIWebhookChangeTests {
    static func json(_ text: String) -> String { JSONValue.string(text).text }

    /// The keys and destinations as the gateway loads them at a reload: the sealed secrets opened.
    static func directory(_ api: AdminAPIHarness) async throws -> WebhookDirectory {
        try await CredentialLoader(store: api.gw.admin.store, sealer: api.gw.admin.sealer).loadWebhookDirectory(routesPath: nil)
    }

    @Test("destinations: security adds, replaces under If-Match and removes; secrets sealed at once and never answered; refusals recorded")
    func destinations() async throws {
        try await withAdminAPI(tls: true) { api in
            let secret = AdminAPIWebhookTests.random("whsec_PLANTEDapi")
            let newSecret = AdminAPIWebhookTests.random("PLANTEDreplaced")
            let identity = try TestPKI(name: "destination CA").issueClient(commonName: "gateway to orders")
            let other = try TestPKI(name: "another CA").issueClient(commonName: "someone else")
            var answers: [TestHTTPResponse] = []
            func send(_ method: String, _ path: String, as role: AdminRole?, ifMatch: String? = nil, body: String? = nil) async throws -> TestHTTPResponse {
                let answer = try await api.send(method, path, as: role, headers: ifMatch.map { [("If-Match", $0)] } ?? [], body: body)
                answers.append(answer)
                return answer
            }
            let full = #"{"name":"orders","url":"https://hooks.example/orders","secret":"\#(secret)","client_certificate_pem":\#(Self.json(identity.certificatePEM)),"client_key_pem":\#(Self.json(identity.privateKeyPEM))}"#

            // Refused: roles, no token, bad bodies; each a refusal record, and nothing stored.
            #expect(try await send("POST", "/admin/v1/webhooks/destinations", as: .viewer, body: full).status == 403)
            #expect(try await send("POST", "/admin/v1/webhooks/destinations", as: .operator, body: full).status == 403)
            #expect(try await send("POST", "/admin/v1/webhooks/destinations", as: nil, body: full).status == 401)
            for bad in [
                #"{"name":"orders","url":"http://hooks.example/orders"}"#,  // plain HTTP off loopback
                #"{"name":"orders","url":"https://user:pw@hooks.example/orders"}"#,  // credentials in the URL
                #"{"name":"a b","url":"https://hooks.example/orders"}"#,  // against the id rules
                #"{"name":"orders","url":"https://hooks.example/orders","secret":""}"#,
                #"{"name":"orders","url":"https://hooks.example/orders","colour":"red"}"#,
                #"{"name":"orders","url":"https://hooks.example/orders","client_certificate_pem":\#(Self.json(identity.certificatePEM))}"#,
                #"{"name":"orders","url":"https://hooks.example/orders","client_certificate_pem":\#(Self.json(identity.certificatePEM)),"client_key_pem":\#(Self.json(other.privateKeyPEM))}"#,
                "[]",
            ] {
                let refused = try await send("POST", "/admin/v1/webhooks/destinations", as: .security, body: bad)
                #expect(refused.status == 400 && refused.errorCode == "GATEWAY_BAD_REQUEST", "\(bad.prefix(80)): \(refused.text)")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.0) == ["refusal"])
            }
            #expect(try await api.gw.admin.webhookStore.webhookDestinations().isEmpty, "a refused addition stored something")

            // Added: by reference, sealed, opening to what was sent; a second addition of the name is 409.
            let added = try await send("POST", "/admin/v1/webhooks/destinations", as: .security, body: full)
            #expect(added.status == 201, "\(added.text)")
            #expect(added.json["secret"]?["version"]?.intValue == 1 && added.json["client_certificate_fingerprint"]?.stringValue == identity.fingerprint)
            let etag = try #require(added.header("ETag"))
            #expect(added.json["etag"]?.stringValue == etag)
            #expect(try await api.auditRecords(added.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            let directory = try await Self.directory(api)
            #expect(directory.destinations["orders"]?.secret?.exposedValue == secret, "the secret is sealed and opens to what was sent")
            #expect(try await send("POST", "/admin/v1/webhooks/destinations", as: .security, body: full).status == 409)
            let listed = try await send("GET", "/admin/v1/webhooks/destinations", as: .viewer)
            #expect(listed.json["destinations"]?.arrayValue?.first?["etag"]?.stringValue == etag)

            // Replaced under If-Match only: missing 428, malformed 400, stale 412 with the current one; then whole.
            let replacement = #"{"url":"https://hooks.example/v2","secret":"\#(newSecret)"}"#
            #expect(try await send("PUT", "/admin/v1/webhooks/destinations/orders", as: .security, body: replacement).status == 428)
            #expect(try await send("PUT", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: "*", body: replacement).status == 400)
            let stale = try await send("PUT", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: AdminAPITests.staleETag, body: replacement)
            #expect(stale.status == 412 && stale.header("ETag") == etag)
            #expect(try await send("PUT", "/admin/v1/webhooks/destinations/orders", as: .operator, ifMatch: etag, body: replacement).status == 403)
            #expect(try await send("PUT", "/admin/v1/webhooks/destinations/ghost", as: .security, ifMatch: etag, body: replacement).status == 404)
            let replaced = try await send("PUT", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: etag, body: replacement)
            #expect(replaced.status == 200, "\(replaced.text)")
            #expect(replaced.json["url"]?.stringValue == "https://hooks.example/v2" && replaced.json["secret"]?["version"]?.intValue == 2)
            #expect(replaced.json["client_key"] == .null && replaced.json["client_certificate_fingerprint"] == .null, "replaced whole")
            let newTag = try #require(replaced.header("ETag"))
            #expect(newTag != etag)
            #expect(try await Self.directory(api).destinations["orders"]?.secret?.exposedValue == newSecret)
            #expect(try await send("PUT", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: etag, body: replacement).status == 412)

            // Removed under If-Match; then gone, and a second removal 404.
            #expect(try await send("DELETE", "/admin/v1/webhooks/destinations/orders", as: .security).status == 428)
            #expect(try await send("DELETE", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: etag).status == 412)
            let removed = try await send("DELETE", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: newTag)
            #expect(removed.status == 200 && removed.json["name"]?.stringValue == "orders")
            #expect(try await api.auditRecords(removed.header("Klarna-Gateway-Request-Id")).map(\.4) == ["admin.removeWebhookDestination", "admin.removeWebhookDestination"])
            #expect(try await api.gw.admin.webhookStore.webhookDestinations().isEmpty)
            #expect(try await send("DELETE", "/admin/v1/webhooks/destinations/orders", as: .security, ifMatch: newTag).status == 404)

            try await AdminAPIPartnerCredentialTests.expectNowhere(
                [secret, newSecret, secretPart(ofPrivateKeyPEM: identity.privateKeyPEM), secretPart(ofPrivateKeyPEM: other.privateKeyPEM)],
                after: answers, in: api, recordedAs: "admin.replaceWebhookDestination")
        }
    }

    @Test("signing keys: security adds (sealed, never answered), rotates at Klarna and removes; 404, 409, 400 and 403 refused and recorded")
    func signingKeys() async throws {
        try await withAdminAPI(tls: true) { api in
            let secret = AdminAPIWebhookTests.random("PLANTEDkeyAPI")
            var answers: [TestHTTPResponse] = []
            func send(_ method: String, _ path: String, as role: AdminRole?, body: String? = nil) async throws -> TestHTTPResponse {
                let answer = try await api.send(method, path, as: role, body: body)
                answers.append(answer)
                return answer
            }
            let key = #"{"partner_id":"acq","key_id":"klarna-key-1","secret":"\#(secret)"}"#
            #expect(try await send("POST", "/admin/v1/webhooks/keys", as: .operator, body: key).status == 403)
            #expect(try await send("POST", "/admin/v1/webhooks/keys", as: nil, body: key).status == 401)
            #expect(try await send("POST", "/admin/v1/webhooks/keys", as: .security, body: #"{"partner_id":"ghost","key_id":"k","secret":"s"}"#).status == 404)
            for bad in [#"{"partner_id":"acq","key_id":"a key","secret":"s"}"#, #"{"partner_id":"acq","key_id":"k","secret":""}"#, #"{"partner_id":"acq","key_id":"k"}"#] {
                let refused = try await send("POST", "/admin/v1/webhooks/keys", as: .security, body: bad)
                #expect(refused.status == 400, "\(bad): \(refused.text)")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.0) == ["refusal"])
            }
            #expect(try await api.gw.admin.listWebhookKeys().isEmpty)

            let added = try await send("POST", "/admin/v1/webhooks/keys", as: .security, body: key)
            #expect(added.status == 201 && added.json["key_id"]?.stringValue == "klarna-key-1" && added.json["sealed_under"]?.intValue == 1, "\(added.text)")
            let records = try await api.auditRecords(added.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.4 == "admin.addWebhookKey" && $0.1 == "admin:security-admin" })
            #expect(try await Self.directory(api).keys.secret(partner: "acq", keyID: "klarna-key-1")?.exposedValue == secret)
            #expect(try await send("POST", "/admin/v1/webhooks/keys", as: .security, body: key).status == 409)

            // A rotation at Klarna (the harness's simulator, through the gateway's upstream CA): a new key, sealed.
            #expect(try await send("POST", "/admin/v1/webhooks/keys/rotate", as: .operator, body: #"{"partner_id":"acq"}"#).status == 403)
            #expect(try await send("POST", "/admin/v1/webhooks/keys/rotate", as: .security, body: #"{"partner_id":"ghost"}"#).status == 404)
            let rotated = try await send("POST", "/admin/v1/webhooks/keys/rotate", as: .security, body: #"{"partner_id":"acq"}"#)
            #expect(rotated.status == 200, "\(rotated.text)")
            let newKey = try #require(rotated.json["key"]?["key_id"]?.stringValue)
            #expect(rotated.json["moved"]?.arrayValue?.isEmpty == true)
            #expect(try await api.gw.admin.listWebhookKeys(partnerID: "acq").map(\.keyID).sorted() == ["klarna-key-1", newKey].sorted())
            #expect(try await api.auditRecords(rotated.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])

            // Removed, no If-Match (a key id never names another secret); a second removal 404.
            #expect(try await send("DELETE", "/admin/v1/webhooks/keys/acq/klarna-key-1", as: .operator).status == 403)
            let removed = try await send("DELETE", "/admin/v1/webhooks/keys/acq/klarna-key-1", as: .security)
            #expect(removed.status == 200 && removed.json["key_id"]?.stringValue == "klarna-key-1")
            #expect(try await api.gw.admin.listWebhookKeys(partnerID: "acq").map(\.keyID) == [newKey])
            #expect(try await send("DELETE", "/admin/v1/webhooks/keys/acq/klarna-key-1", as: .security).status == 404)
            let rotatedSecret = try #require(try await Self.directory(api).keys.secret(partner: "acq", keyID: newKey)?.exposedValue)

            try await AdminAPIPartnerCredentialTests.expectNowhere(
                [secret, rotatedSecret], after: answers + [try await api.send("GET", "/admin/v1/webhooks/keys", as: .viewer)], in: api,
                recordedAs: "admin.rotateWebhookKey")
        }
    }

    @Test("an event is shown with its attempts and its body by size and hash only; an operator replays it, a viewer may not")
    func eventsShownAndReplayed() async throws {
        try await withAdminAPI(tls: true) { api in
            let admin = api.gw.admin
            let store = try admin.webhookStore
            let marker = AdminAPIWebhookTests.random("PLANTEDbody")
            try await admin.addWebhookDestination(name: "orders", url: "https://hooks.example/orders", secret: nil, clientCertificatePEM: nil, clientKeyPEM: nil)
            try await admin.addWebhookDestination(name: "sink", url: "http://127.0.0.1:9/sink", secret: nil, clientCertificatePEM: nil, clientKeyPEM: nil)
            let body = Array(#"{"metadata":{"event_id":"ev/1"},"marker":"\#(marker)"}"#.utf8)
            let account = try await admin.showMerchant(id: "m1").account.rawValue
            _ = try await store.saveWebhookEvents([
                NewWebhookEvent(
                    event: WebhookEventRecord(
                        eventID: "ev/1", partnerID: "acq", signingKeyID: "k", eventType: "payment.transaction.captured", account: account, merchantID: "m1",
                        receivedAtMicros: UTCTime.nowMicros(), state: .pending, body: body), destinations: ["orders", "sink"])
            ])
            let now = UTCTime.nowMicros()
            try await store.completeWebhookDeliveries([
                WebhookDeliveryOutcome(eventID: "ev/1", destination: "orders", nodeID: "n1", attempt: 1, state: .delivered, nextAttemptMicros: now, status: 204, error: nil, timeMicros: now),
                WebhookDeliveryOutcome(eventID: "ev/1", destination: "sink", nodeID: "n2", attempt: 1, state: .dead, nextAttemptMicros: now, status: nil, error: "connection refused", timeMicros: now),
            ])
            var answers: [TestHTTPResponse] = []
            func send(_ method: String, _ path: String, as role: AdminRole?, body: String? = nil) async throws -> TestHTTPResponse {
                let answer = try await api.send(method, path, as: role, body: body)
                answers.append(answer)
                return answer
            }

            let shown = try await send("GET", "/admin/v1/webhooks/events/ev%2F1", as: .viewer)
            #expect(shown.status == 200 && shown.json["event_id"]?.stringValue == "ev/1" && shown.json["state"]?.stringValue == "dead", "\(shown.text)")
            #expect(shown.json["body_bytes"]?.intValue == body.count)
            #expect(shown.json["body_sha256"]?.stringValue == Hex.encode(SHA256.hash(data: body)))
            let attempts = shown.json["attempts"]?.arrayValue ?? []
            #expect(Set(attempts.map { "\($0["destination"]?.stringValue ?? "") \($0["attempt"]?.intValue ?? 0) \($0["node_id"]?.stringValue ?? "")" }) == ["orders 1 n1", "sink 1 n2"])
            #expect(attempts.first { $0["destination"]?.stringValue == "sink" }?["error"]?.stringValue == "connection refused")
            #expect(try await send("GET", "/admin/v1/webhooks/events/ghost", as: .viewer).status == 404)
            #expect(try await send("GET", "/admin/v1/webhooks/events/ev%2F1", as: nil).status == 401)

            // Replay: a viewer 403; unknown event, a destination without a delivery, a bad body refused; then made.
            #expect(try await send("POST", "/admin/v1/webhooks/events/ev%2F1/replay", as: .viewer).status == 403)
            #expect(try await send("POST", "/admin/v1/webhooks/events/ghost/replay", as: .operator).status == 404)
            #expect(try await send("POST", "/admin/v1/webhooks/events/ev%2F1/replay", as: .operator, body: #"{"destination":"ledger"}"#).status == 404)
            #expect(try await send("POST", "/admin/v1/webhooks/events/ev%2F1/replay", as: .operator, body: #"{"to":"sink"}"#).status == 400)
            let one = try await send("POST", "/admin/v1/webhooks/events/ev%2F1/replay", as: .operator, body: #"{"destination":"sink"}"#)
            #expect(one.status == 200 && one.json["replayed"]?.intValue == 1 && one.json["event"]?["state"]?.stringValue == "pending", "\(one.text)")
            let records = try await api.auditRecords(one.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.4 == "admin.replayWebhookEvent" && $0.5 == "m1" }, "\(records)")
            #expect(try await store.webhookDeliveries(eventID: "ev/1").map { "\($0.destination) \($0.state.rawValue)" }.sorted() == ["orders delivered", "sink pending"])
            let all = try await send("POST", "/admin/v1/webhooks/events/ev%2F1/replay", as: .operator)
            #expect(all.status == 200 && all.json["replayed"]?.intValue == 1, "the delivered one too (the other is pending already): \(all.text)")
            #expect(try await store.webhookDeliveries(eventID: "ev/1").allSatisfy { $0.state == .pending })

            try await AdminAPIPartnerCredentialTests.expectNowhere([marker], after: answers, in: api, recordedAs: "admin.replayWebhookEvent")
        }
    }
}
