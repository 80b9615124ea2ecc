import Foundation
import GRDB
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Webhook changes through the admin API of the served binary (`klarna-gateway serve` with the Klarna simulator and
/// real receivers over TLS): each takes effect as the CLI's does. A signing key added through the API verifies the
/// next event, a destination replaced through it receives the next delivery signed with its new secret, a replay
/// delivers again, a rotation creates a key at Klarna and moves the webhook, a removed key refuses its events, and
/// a destination a route names is not removed. Every change is an intent and an outcome in the served trail, and no
/// uploaded or Klarna-made secret is in any answer, output or store file.
@Suite struct WebhookAdminAPITests {
    @Test("webhook changes through the served admin API take effect: key, destination, replay, rotation, removal (SQLite)", .timeLimit(.minutes(3)))
    func changesTakeEffectOnSQLite() async throws {
        try await Self.changesTakeEffect(storage: "gateway.sqlite")
    }

    @Test(
        "webhook changes through the served admin API take effect on a PostgreSQL store, and at once on another instance that does not poll",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"),
        .timeLimit(.minutes(3)))
    func changesTakeEffectOnPostgres() async throws {
        try await Self.changesTakeEffect(storage: try await webhookTestDatabase("kgw_webhooks_admin_"), secondInstance: true)
    }

    /// With `secondInstance`, another instance of the store runs beside the one whose API is called, with polling off
    /// (an hour between polls), so only PostgreSQL's change notification can bring it the changes.
    static func changesTakeEffect(storage: String, secondInstance: Bool = false) async throws {
        try await withWebhooks(storage: storage) { hooks in
            let other = secondInstance ? try await hooks.serveAnother(nodeID: "webhook-node-b", extra: ["KGW_RELOAD_INTERVAL_MS": "3600000"]) : nil
            // The token is printed alone on stdout; whatever the CLI says on stderr comes with it here.
            func token(_ output: String) throws -> String {
                try #require(output.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("adm_kgw_") }.map(String.init), "no token in: \(output)")
            }
            let security = try token(try await hooks.cli(["admins", "add", "hook-sec", "--role", "security"]))
            let operatorToken = try token(try await hooks.cli(["admins", "add", "hook-ops", "--role", "operator"]))
            let client = TestHTTPClient(port: hooks.adminPort, tls: nil)
            var answers = ""
            func send(_ method: String, _ path: String, token: String, ifMatch: String? = nil, body: String? = nil) async throws -> TestHTTPResponse {
                let answer = try await client.send(
                    method, path, headers: [("Authorization", "Bearer \(token)")] + (ifMatch.map { [("If-Match", $0)] } ?? []), body: body.map { Array($0.utf8) })
                answers += answer.text + answer.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
                return answer
            }
            func json(_ answer: TestHTTPResponse) -> JSONValue { (try? JSONValue.parse(answer.body)) ?? .null }
            var changes: [(String, String)] = []

            // A destination replaced through the API: the receiver the routes' `orders` now names, with a new secret.
            let fresh = try await WebhookReceiver(tls: try hooks.internalCA.issueServer())
            let freshSecret = "PLANTEDfreshDESTINATIONsecret" + UUID().uuidString.prefix(8)
            let listed = try await send("GET", "/admin/v1/webhooks/destinations", token: operatorToken)
            let ordersTag = try #require(json(listed)["destinations"]?.arrayValue?.first { $0["name"]?.stringValue == "orders" }?["etag"]?.stringValue)
            let replaced = try await send(
                "PUT", "/admin/v1/webhooks/destinations/orders", token: security, ifMatch: ordersTag,
                body: #"{"url":"https://localhost:\#(fresh.port)/fresh","secret":"\#(freshSecret)"}"#)
            #expect(replaced.status == 200, "\(replaced.text)")
            #expect(json(replaced)["secret"]?["version"]?.intValue == 2 && json(replaced)["client_key"] == .null)
            changes.append(("admin.replaceWebhookDestination", try #require(replaced.header("Klarna-Gateway-Request-Id"))))

            // A signing key through the API; an event signed with it is accepted once this instance reloaded, which it
            // does at once after the change, and by then the destination's replacement is in force too.
            let keySecret = "PLANTEDapiSIGNINGkey" + UUID().uuidString.prefix(8)
            let added = try await send("POST", "/admin/v1/webhooks/keys", token: security, body: #"{"partner_id":"acq","key_id":"api-key-1","secret":"\#(keySecret)"}"#)
            #expect(added.status == 201 && json(added)["key_id"]?.stringValue == "api-key-1", "\(added.text)")
            changes.append(("admin.addWebhookKey", try #require(added.header("Klarna-Gateway-Request-Id"))))
            let eventID = "api-event-" + UUID().uuidString.prefix(8)
            #expect(try await hooks.postSigned(eventID: eventID, keyID: "api-key-1", secret: keySecret, port: hooks.webhooksPort) == 200)
            let delivered = try await hooks.waitForDelivered(fresh, ids: [eventID])
            #expect(delivered.first { $0.header("webhook-id") == eventID }?.verifies(secret: freshSecret) == true, "signed with the new secret")
            #expect(delivered.first?.path == "/fresh")
            try await hooks.waitForStoreDelivered([eventID])
            if let other {
                let otherEvent = "api-event-b-" + UUID().uuidString.prefix(8)
                #expect(try await hooks.postSigned(eventID: otherEvent, keyID: "api-key-1", secret: keySecret, port: other.webhooks) == 200,
                        "the other instance accepts an event signed with the key added through this one's API")
                try await hooks.waitForDelivered(fresh, ids: [otherEvent])
            }

            // Replayed through the API (operator): delivered once more.
            let replay = try await send("POST", "/admin/v1/webhooks/events/\(eventID)/replay", token: operatorToken)
            #expect(replay.status == 200 && json(replay)["replayed"]?.intValue == 1, "\(replay.text)")
            changes.append(("admin.replayWebhookEvent", try #require(replay.header("Klarna-Gateway-Request-Id"))))
            let deadline = ContinuousClock.now + .seconds(30)
            while fresh.received.filter({ $0.header("webhook-id") == eventID && $0.status == 200 }).count < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(fresh.received.filter { $0.header("webhook-id") == eventID && $0.status == 200 }.count == 2, "delivered again")
            try await hooks.waitForStoreDelivered([eventID])
            let shown = try await send("GET", "/admin/v1/webhooks/events/\(eventID)", token: operatorToken)
            #expect(json(shown)["attempts"]?.arrayValue?.filter { $0["status"]?.intValue == 200 }.count == 2, "\(shown.text)")
            #expect(json(shown)["body_bytes"]?.intValue ?? 0 > 0 && !shown.text.contains("subject_account_id"), "the body is not answered")

            // A destination a route names is not removed (409), recorded as a refusal.
            let current = try #require(json(try await send("GET", "/admin/v1/webhooks/destinations", token: operatorToken))["destinations"]?.arrayValue?
                .first { $0["name"]?.stringValue == "orders" }?["etag"]?.stringValue)
            let inUse = try await send("DELETE", "/admin/v1/webhooks/destinations/orders", token: security, ifMatch: current)
            #expect(inUse.status == 409 && (json(inUse)["error_message"]?.stringValue ?? "").contains("webhooks.yaml"), "\(inUse.text)")

            // A rotation through the API: a new key at Klarna, sealed, and the registered webhook moved to it.
            let webhookID = try await hooks.register()
            let rotated = try await send("POST", "/admin/v1/webhooks/keys/rotate", token: security, body: #"{"partner_id":"acq"}"#)
            #expect(rotated.status == 200 && json(rotated)["moved"]?.arrayValue?.compactMap(\.stringValue) == [webhookID], "\(rotated.text)")
            changes.append(("admin.rotateWebhookKey", try #require(rotated.header("Klarna-Gateway-Request-Id"))))
            let newKey = try #require(json(rotated)["key"]?["key_id"]?.stringValue)
            #expect(try await hooks.admin.listWebhookKeys(partnerID: "acq").map(\.keyID).contains(newKey))

            // The key removed through the API: its events are refused once this instance reloaded.
            let removed = try await send("DELETE", "/admin/v1/webhooks/keys/acq/api-key-1", token: security)
            #expect(removed.status == 200, "\(removed.text)")
            changes.append(("admin.removeWebhookKey", try #require(removed.header("Klarna-Gateway-Request-Id"))))
            // An instance's answer to an event signed with the removed key, once it is 401 (or after 10 s).
            func refusal(port: Int) async throws -> Int {
                var status = 0
                for attempt in 0..<200 where status != 401 {
                    let client = TestHTTPClient(port: port, tls: TestTLS(trustRootsPEM: hooks.internalCA.certificatePEM))
                    let body = Array(#"{"metadata":{"event_type":"payment.transaction.captured","event_id":"late-\#(port)-\#(attempt)","subject_account_id":"krn:partner:global:account:test:M1"}}"#.utf8)
                    status = (try? await client.send("POST", "/klarna/webhooks/acq", headers: [
                        ("Content-Type", "application/json"), ("Klarna-Signing-Key-Id", "api-key-1"),
                        ("Klarna-Signature", KlarnaWebhookSignature.sign(body: body, secret: Secret(keySecret))),
                    ], body: body))?.status ?? 0
                    try? await client.close()
                    if status != 401 { try await Task.sleep(for: .milliseconds(50)) }
                }
                return status
            }
            #expect(try await refusal(port: hooks.webhooksPort) == 401, "an event signed with the removed key is refused")
            if let other {
                #expect(try await refusal(port: other.webhooks) == 401, "and by the other instance")
                other.process.kill(SIGTERM)
                _ = try await other.process.wait()
                hooks.outputs.withLockedValue { $0.append(other.process.stdout + other.process.stderr) }
            }

            // Each change is an intent and an outcome by the admin in the served trail; the refusal one record.
            try await client.close()
            try await hooks.stopGateway(SIGTERM)
            let trail = try DatabaseQueue(path: hooks.directory.appendingPathComponent("audit.sqlite").path)
            for (operation, requestID) in changes {
                let rows = try await trail.read { db in
                    try Row.fetchAll(db, sql: "SELECT phase, caller_id, operation_id FROM audit_records WHERE request_id = ? ORDER BY seq", arguments: [requestID])
                        .map { [$0[0] as String? ?? "-", $0[1] as String? ?? "-", $0[2] as String? ?? "-"] }
                }
                #expect(rows.map { $0[0] } == ["intent", "outcome"], "\(operation)")
                #expect(rows.allSatisfy { $0[2] == operation && $0[1].hasPrefix("admin:hook-") }, "\(operation): \(rows)")
            }
            let inUseID = inUse.header("Klarna-Gateway-Request-Id")
            let refusal = try await trail.read { db in
                try Row.fetchAll(db, sql: "SELECT phase, gateway_error_code FROM audit_records WHERE request_id = ?", arguments: [inUseID])
                    .map { "\($0[0] as String? ?? "-") \($0[1] as String? ?? "-")" }
            }
            #expect(refusal == ["refusal GATEWAY_CONFLICT"])

            // No secret in any answer, output or store file: the uploaded ones, Klarna's, the harness's; and no admin
            // token in an answer (the CLI printed them, once, when they were made).
            for token in [security, operatorToken] {
                let leaked = answers.contains(String(token.suffix(43)))
                #expect(!leaked, "an admin token is in an answer")
            }
            hooks.outputs.withLockedValue { $0.append(answers) }
            try await hooks.searchForSecrets(also: [freshSecret, keySecret])
            try? await fresh.stop()
        }
    }
}
