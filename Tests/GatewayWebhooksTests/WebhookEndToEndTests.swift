import Foundation
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import KlarnaSimulator
import Testing

/// Klarna's webhooks through the gateway, end to end (see `WebhookHarness`): registration through the gateway's
/// CLI, Klarna's signed deliveries over TLS, the store, the routes, and two receivers that verify what they get.
@Suite("Webhooks end to end", .serialized)
struct WebhookEndToEndTests {
    @Test(
        "register, then simulate and real state changes reach both receivers per the routes, verified; forgeries are 401 and reach no one; Klarna's retry is delivered once; an unknown KRN is unroutable; no secret appears anywhere",
        .timeLimit(.minutes(4)))
    func routedAndVerified() async throws {
        try await withWebhooks { hooks in
            let webhookID = try await hooks.register()
            #expect(try await hooks.cli(["webhooks", "keys", "list", "--partner", "acq"]).contains("acq\tkrn:notification:"))

            // Klarna's test helper, then real state changes through the gateway's proxy, then one at an account the
            // gateway does not know (straight to Klarna).
            let klarna = hooks.klarna()
            let simulated = try await klarna.send(
                "POST", "/v2/notification/webhooks/\(webhookID)/simulate", headers: [hooks.klarnaAuthorization, ("Content-Type", "application/json")],
                body: Array(#"{"event_type":"payment.transaction.captured"}"#.utf8))
            #expect(simulated.status == 202, "simulate: \(simulated.text)")
            _ = try await hooks.createPaymentRequest(merchant: "m1")
            let m2Request = try await hooks.createPaymentRequest(merchant: "m2")
            let advanced = try await hooks.control.send(
                "POST", "/control/payment-requests/\(m2Request)/advance", body: Array(#"{"state":"COMPLETED"}"#.utf8))
            #expect(advanced.status == 200, "advance: \(advanced.text)")
            let unknown = try await klarna.send(
                "POST", "/v2/accounts/\(WebhookHarness.unknownAccount)/payment/requests", headers: [hooks.klarnaAuthorization, ("Content-Type", "application/json")],
                body: Array(#"{"currency":"EUR","amount":500}"#.utf8))
            #expect(unknown.status == 201, "payment request at the unknown account: \(unknown.text)")

            // Klarna logs each delivery before it answers the call that caused it: count what it sent, then wait for
            // all of it to be acknowledged (durable at the gateway).
            let sent = try await hooks.waitForKlarnaDelivered(count: try await hooks.klarnaDeliveries().count)
            #expect(sent.count >= 5, "Klarna sent \(sent.count) deliveries")
            var expectedOrders: Set<String> = []
            var expectedLedger: Set<String> = []
            var unroutable: Set<String> = []
            var bodies: [String: [UInt8]] = [:]
            for delivery in sent {
                let body = Array((delivery["body"]?.stringValue ?? "").utf8)
                let metadata = try JSONValue.parse(body)["metadata"]
                let id = try #require(metadata?["event_id"]?.stringValue)
                let type = metadata?["event_type"]?.stringValue ?? ""
                let account = metadata?["subject_account_id"]?.stringValue ?? ""
                bodies[id] = body
                guard let index = WebhookHarness.accounts.firstIndex(where: { account.hasSuffix(":\($0)") }) else {
                    unroutable.insert(id)
                    continue
                }
                expectedOrders.insert(id)
                if type == "payment.request.state-change.completed" && index % 2 == 1 { expectedLedger.insert(id) }
            }
            #expect(!expectedLedger.isEmpty && !unroutable.isEmpty)

            let orders = try await hooks.waitForDelivered(hooks.orders, ids: expectedOrders)
            let ledger = try await hooks.waitForDelivered(hooks.ledger, ids: expectedLedger)
            try await hooks.waitForStoreDelivered(expectedOrders)
            for (received, secret, expected) in [(orders, WebhookHarness.ordersSecret, expectedOrders), (ledger, WebhookHarness.ledgerSecret, expectedLedger)] {
                #expect(Set(received.compactMap { $0.header("webhook-id") }) == expected, "each receiver gets exactly what its routes send it")
                for delivery in received {
                    let id = delivery.header("webhook-id") ?? ""
                    #expect(delivery.verifies(secret: secret), "the receiver verifies \(id) with its secret")
                    #expect(delivery.body == bodies[id], "Klarna's body, byte for byte")
                    #expect(delivery.header("Klarna-Gateway-Partner") == "acq")
                    #expect(delivery.header("Klarna-Gateway-Merchant")?.hasPrefix("m") == true)
                    #expect(delivery.header("Klarna-Gateway-Event-Type")?.hasPrefix("payment.") == true)
                }
            }
            #expect(orders.allSatisfy { $0.presentedCertificate }, "orders asks for the gateway's client certificate and gets it")
            #expect(!hooks.ledger.received.contains { $0.verifies(secret: WebhookHarness.ordersSecret) }, "one destination's secret does not verify another's")

            // Klarna's own retry of a delivered event: acknowledged, not delivered again.
            let retried = try #require(sent.first { expectedOrders.contains((try? JSONValue.parse(Array(($0["body"]?.stringValue ?? "").utf8)))?["metadata"]?["event_id"]?.stringValue ?? "") })
            let retryBody = Array((retried["body"]?.stringValue ?? "").utf8)
            let keyID = retried["signing_key_id"]?.stringValue ?? ""
            let signature = retried["signature"]?.stringValue ?? ""
            let client = hooks.webhookClient()
            let repeatAnswer = try await client.send("POST", "/klarna/webhooks/acq", headers: [
                ("Content-Type", "application/json"), ("Klarna-Signing-Key-Id", keyID), ("Klarna-Signature", signature),
            ], body: retryBody)
            #expect(repeatAnswer.status == 200 && repeatAnswer.text.contains("duplicate"), "retry: \(repeatAnswer.status) \(repeatAnswer.text)")

            // Forged, re-signed with a wrong key, body altered, unknown key, unsigned: 401 each, nothing stored.
            let forgedID = "forged-\(UUID().uuidString)"
            let forgedBody = Array(String(decoding: retryBody, as: UTF8.self).replacingOccurrences(
                of: (try JSONValue.parse(retryBody))["metadata"]?["event_id"]?.stringValue ?? "", with: forgedID).utf8)
            let wrongKey = KlarnaWebhookSignature.sign(body: forgedBody, secret: Secret("not the signing key"))
            for (headers, body) in [
                ([("Klarna-Signing-Key-Id", keyID), ("Klarna-Signature", wrongKey)], forgedBody),
                ([("Klarna-Signing-Key-Id", keyID), ("Klarna-Signature", signature)], forgedBody),
                ([("Klarna-Signing-Key-Id", "krn:notification:eu1:signing-key:unknown"), ("Klarna-Signature", signature)], retryBody),
                ([("Klarna-Signing-Key-Id", keyID)], retryBody),
            ] {
                let answer = try await client.send("POST", "/klarna/webhooks/acq", headers: headers + [("Content-Type", "application/json")], body: body)
                #expect(answer.status == 401, "forged: \(answer.status) \(answer.text)")
                #expect((try? JSONValue.parse(answer.body))?["error_code"]?.stringValue == "GATEWAY_UNAUTHENTICATED")
            }
            // Other paths and methods: 404; a valid signature on a body that is not JSON: 400; too large: 413.
            #expect(try await client.send("GET", "/klarna/webhooks/acq").status == 404)
            #expect(try await client.send("POST", "/v2/accounts/m1/payment/requests", body: retryBody).status == 404)
            let oversized = [UInt8](repeating: UInt8(ascii: " "), count: 1_048_577)
            #expect(try await client.send("POST", "/klarna/webhooks/acq", headers: [("Klarna-Signing-Key-Id", keyID), ("Klarna-Signature", signature)], body: oversized).status == 413)
            try? await client.close()
            // HTTP the parser cannot read: Klarna's error shape (not NIO's bare 400), and the connection closed.
            let raw = try await RawConnection.open(port: hooks.webhooksPort, tls: TestTLS(trustRootsPEM: hooks.internalCA.certificatePEM))
            await raw.send("POST /klarna/webhooks/acq HTTP/1.1\r\nHost: localhost\r\nContent-Length: twelve\r\n\r\n")
            let malformed = await raw.response()
            #expect(malformed?.status == 400)
            #expect((malformed.flatMap { try? JSONValue.parse($0.body) })?["error_code"]?.stringValue == "GATEWAY_BAD_REQUEST", "\(String(describing: malformed))")
            #expect(await raw.waitForClose())

            // A key added by hand signs a body that is not Klarna's envelope: 400 (verified first, then read).
            try "PLANTEDhandKEYsecret0b9f2e".write(to: hooks.directory.appendingPathComponent("hand-key"), atomically: true, encoding: .utf8)
            try await hooks.cli(["webhooks", "keys", "add", "--partner", "acq", "--key-id", "hand-key-1", "--secret-file", hooks.directory.appendingPathComponent("hand-key").path])
            let notEnvelope = Array(#"{"metadata":{"event_type":"x"}}"#.utf8)
            let handSigned = KlarnaWebhookSignature.sign(body: notEnvelope, secret: Secret("PLANTEDhandKEYsecret0b9f2e"))
            var answered = 0
            let keyReloaded = ContinuousClock.now + .seconds(60)
            while answered != 400 && ContinuousClock.now < keyReloaded {
                let client = hooks.webhookClient()
                answered = (try? await client.send("POST", "/klarna/webhooks/acq", headers: [("Klarna-Signing-Key-Id", "hand-key-1"), ("Klarna-Signature", handSigned)], body: notEnvelope))?.status ?? 0
                try? await client.close()
                if answered == 401 { try await Task.sleep(for: .milliseconds(50)) }  // the key reaches the running gateway on its next reload
            }
            #expect(answered == 400)
            try await hooks.cli(["webhooks", "keys", "remove", "--partner", "acq", "--key-id", "hand-key-1"])

            // Nothing forged was stored or delivered; the retry was not delivered twice; the unknown KRN is listed.
            let stored = try await hooks.events()
            #expect(!stored.contains { $0.eventID == forgedID })
            #expect(Set(stored.map(\.eventID)) == expectedOrders.union(unroutable))
            for receiver in [hooks.orders, hooks.ledger] {
                let ids = receiver.received.filter { $0.status == 200 }.compactMap { $0.header("webhook-id") }
                #expect(ids.count == Set(ids).count, "no event delivered twice to one receiver")
                #expect(!ids.contains(forgedID))
            }
            let listed = try await hooks.cli(["webhooks", "events", "list", "--state", "unroutable"])
            for id in unroutable { #expect(listed.contains(id), "unroutable \(id) in: \(listed)") }
            let shown = try await hooks.cli(["webhooks", "events", "show", try #require(expectedLedger.first)])
            #expect(shown.contains("delivery ledger: delivered") && shown.contains("delivery orders: delivered"), "\(shown)")

            // Counted: events stored, duplicates, refusals by reason, deliveries by destination and outcome.
            #expect(try await hooks.metric("kgw_webhooks_received_total") == Double(expectedOrders.count + unroutable.count))
            #expect(try await hooks.metric("kgw_webhooks_duplicates_total") ?? 0 >= 1)
            #expect(try await hooks.metric(#"kgw_webhooks_rejected_total{reason="bad_signature"}"#) ?? 0 >= 2)
            #expect(try await hooks.metric(#"kgw_webhooks_rejected_total{reason="unknown_key"}"#) ?? 0 >= 1)
            #expect(try await hooks.metric(#"kgw_webhooks_rejected_total{reason="not_envelope"}"#) == 1)
            let ledgerDelivered = Double(expectedLedger.count)
            #expect(try await hooks.metric(#"kgw_webhook_deliveries_total{destination="ledger",outcome="delivered"}"#, reaching: ledgerDelivered) == ledgerDelivered)

            // The audit trail has every receipt (accepted, and the forgeries refused) and every delivery, with
            // Klarna's event id, and none of a body's content.
            let audit = try await hooks.webhookAuditRecords(until: expectedOrders.count + expectedLedger.count)
            let receipts = audit.filter { $0.operation == "receiveKlarnaWebhook" }
            #expect(Set(receipts.filter { $0.phase == "outcome" }.compactMap(\.eventID)).isSuperset(of: expectedOrders.union(unroutable)))
            #expect(receipts.filter { $0.phase == "refusal" && $0.code == "GATEWAY_UNAUTHENTICATED" }.count >= 4)
            let deliveries = audit.filter { $0.operation == "deliverKlarnaWebhook" && $0.status == 200 }
            #expect(Set(deliveries.filter { $0.path == "webhook-destination:ledger" }.compactMap(\.eventID)) == expectedLedger)
            let auditBytes = try Data(contentsOf: hooks.directory.appendingPathComponent("audit.sqlite"))
            #expect(auditBytes.range(of: Data(m2Request.utf8)) == nil, "a body's content (the payment request id) is not in the audit trail")

            // A key rotation: a new key at Klarna, the webhook moved to it, the old key still accepted until removed.
            let rotated = try await hooks.cli(["webhooks", "keys", "rotate", "--partner", "acq"])
            #expect(rotated.contains("webhooks moved: \(webhookID)"), "\(rotated)")
            #expect(try await hooks.admin.listWebhookKeys(partnerID: "acq").count == 2)
            let after = try await klarna.send(
                "POST", "/v2/notification/webhooks/\(webhookID)/simulate", headers: [hooks.klarnaAuthorization, ("Content-Type", "application/json")],
                body: Array(#"{"event_type":"payment.transaction.refunded"}"#.utf8))
            #expect(after.status == 202)
            let resent = try await hooks.waitForKlarnaDelivered(count: sent.count + 1)
            #expect(Set(resent.compactMap { $0["signing_key_id"]?.stringValue }).count == 2, "the new event is signed with the new key")

            try await hooks.searchForSecrets()
        }
    }

    @Test(
        "a receiver down for a while gets every event once it is back; kill -9 between receipt and delivery loses nothing",
        .timeLimit(.minutes(4)))
    func downAndKilled() async throws {
        try await withWebhooks { hooks in
            _ = try await hooks.register()
            hooks.orders.setDown(true)
            for merchant in ["m1", "m2", "m3", "m4", "m1", "m3"] { _ = try await hooks.createPaymentRequest(merchant: merchant) }
            let sent = try await hooks.waitForKlarnaDelivered(count: 6)
            let ids = Set(sent.compactMap { (try? JSONValue.parse(Array(($0["body"]?.stringValue ?? "").utf8)))?["metadata"]?["event_id"]?.stringValue })
            #expect(ids.count == 6)
            // The gateway tried (and the receiver refused) before it is killed: acknowledged to Klarna, not delivered.
            _ = try await hooks.orders.waitFor(count: 1)
            #expect(try await hooks.adminGet("/readyz").status == 200, "a destination that is down does not make the gateway unready")
            try await hooks.stopGateway(SIGKILL)
            let pending = try await hooks.events(state: .pending)
            #expect(Set(pending.map(\.eventID)) == ids, "every acknowledged event is stored and pending after the kill")

            try await hooks.serve()
            hooks.orders.setDown(false)
            let delivered = try await hooks.waitForDelivered(hooks.orders, ids: ids)
            #expect(delivered.allSatisfy { $0.verifies(secret: WebhookHarness.ordersSecret) })
            try await hooks.waitForStoreDelivered(ids)
            #expect(try await hooks.metric(#"kgw_webhook_deliveries_total{destination="orders",outcome="delivered"}"#, reaching: 6) == 6)
            try await hooks.searchForSecrets()
        }
    }

    @Test(
        "the webhook listener keeps its own connection limit: beyond it a connection is closed at once and counted on /metrics apart from the proxy's, and a place freed is taken again"
    )
    func connectionLimit() async throws {
        try await withWebhooks(environment: ["KGW_LIMITS__MAX_CONNECTIONS": "2"]) { hooks in
            let tls = TestTLS(trustRootsPEM: hooks.internalCA.certificatePEM)
            let first = try await RawConnection.open(port: hooks.webhooksPort, tls: tls)
            let second = try await RawConnection.open(port: hooks.webhooksPort, tls: tls)
            // Both are served: a request on each is answered (404: not the webhook path).
            for connection in [first, second] {
                await connection.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                #expect(await connection.response()?.status == 404)
            }
            let third = try? await RawConnection.open(port: hooks.webhooksPort, tls: tls)
            #expect(await third?.waitForClose() ?? true, "a third connection was kept open beyond the limit of 2")
            // Counted once, in the webhook listeners' own series; the proxy's limit refused nothing.
            let refused = try await hooks.connectionLimitRefusals(reaching: 1)
            #expect(refused == [1, 0], "webhook listeners, proxy: \(refused)")
            await first.close()
            #expect(await first.waitForClose())
            // The place the first one held is free again.
            var answered = false
            let deadline = ContinuousClock.now + .seconds(60)
            while !answered && ContinuousClock.now < deadline {
                let again = try await RawConnection.open(port: hooks.webhooksPort, tls: tls)
                await again.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                answered = await again.response(timeout: .seconds(2))?.status == 404
                await again.close()
            }
            #expect(answered, "no connection was served after one of two closed")
            await second.close()
        }
    }

    @Test("deliveries that run out of attempts are dead, listed, and delivered by replay (one event, then every dead one)", .timeLimit(.minutes(3)))
    func deadAndReplayed() async throws {
        try await withWebhooks(environment: ["KGW_WEBHOOKS__MAX_ATTEMPTS": "2"]) { hooks in
            _ = try await hooks.register()
            hooks.orders.setDown(true)
            _ = try await hooks.createPaymentRequest(merchant: "m1")
            _ = try await hooks.createPaymentRequest(merchant: "m3")
            let sent = try await hooks.waitForKlarnaDelivered(count: 2)
            let ids = try sent.map { try #require((try JSONValue.parse(Array(($0["body"]?.stringValue ?? "").utf8)))["metadata"]?["event_id"]?.stringValue) }
            let deadline = ContinuousClock.now + .seconds(60)
            while try await hooks.events(state: .dead).count < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            let listed = try await hooks.cli(["webhooks", "events", "list", "--state", "dead", "--since", "2000-01-01T00:00:00Z"])
            for id in ids {
                #expect(listed.contains(id))
                #expect(hooks.orders.received.filter { $0.header("webhook-id") == id }.count == 2, "two attempts, then dead")
            }
            hooks.orders.setDown(false)
            #expect(try await hooks.cli(["webhooks", "replay", ids[0]]).contains("1 deliveries pending again"))
            try await hooks.waitForStoreDelivered([ids[0]])
            #expect(try await hooks.events(state: .dead).map(\.eventID) == [ids[1]], "only the replayed event left the dead letters")
            #expect(try await hooks.cli(["webhooks", "replay", "--dead", "--destination", "orders"]).contains("1 deliveries pending again"))
            try await hooks.waitForStoreDelivered(Set(ids))
            try await hooks.waitForDelivered(hooks.orders, ids: Set(ids))
        }
    }

    @Test(
        "several instances on PostgreSQL: any instance receives, and a killed instance's claimed deliveries are taken over after their lease",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"),
        .timeLimit(.minutes(4)))
    func killedInstanceTakenOver() async throws {
        let database = try await webhookTestDatabase("kgw_webhooks_e2e_")
        // Short leases here, so that the takeover comes within seconds; the other tests keep the harness's long ones,
        // which a stalled machine's slow answer cannot outlast (a delivery timed out or re-claimed is delivered twice).
        let shortLeases = ["KGW_WEBHOOKS__LEASE_SECONDS": "3", "KGW_WEBHOOKS__TIMEOUT_MS": "2000"]
        try await withWebhooks(environment: shortLeases, storage: database) { hooks in
            let secret = "PLANTEDclusterSIGNINGsecret5e7d"
            try await hooks.addKnownKey(id: "cluster-key", secret: secret)
            // Instance A receives everything and starts delivering into a receiver that never answers: its
            // deliveries stay claimed (leased) by A when A is killed.
            hooks.orders.setHanging(true)
            let ids = try await hooks.postAccepted(12, prefix: "cluster", keyID: "cluster-key", secret: secret)
            _ = try await hooks.orders.waitFor(count: 8)
            try await hooks.stopGateway(SIGKILL)

            // Instance B: another node of the same database receives too, and delivers what A had claimed once the
            // leases have run out (B does not take back A's leases at start; only their expiry frees them).
            try await hooks.serve(nodeID: "webhook-node-b")
            let late = "cluster-b-\(UUID().uuidString.prefix(8))"
            #expect(try await hooks.postSigned(eventID: late, keyID: "cluster-key", secret: secret, port: hooks.webhooksPort) == 200)
            hooks.orders.setHanging(false)
            try await hooks.waitForDelivered(hooks.orders, ids: Set(ids + [late]))
            try await hooks.waitForStoreDelivered(Set(ids + [late]))
            for id in ids + [late] {
                let attempts = try await hooks.admin.webhookStore.webhookAttempts(eventID: id)
                #expect(attempts.contains { $0.nodeID == "webhook-node-b" && $0.status == 200 }, "\(id) delivered by B: \(attempts)")
            }
        }
    }
}
