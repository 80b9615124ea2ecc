import Foundation
import GatewayCore
import GatewayTestSupport
import Testing
@testable import KlarnaSimulator

@Suite struct WebhookTests {
    /// Registers a signing key and a webhook pointing at `receiver`; returns the key's secret.
    func register(
        _ sim: SimulatorHarness, receiver: WebhookReceiver, eventTypes: [JSONValue] = ["payment.*"], base: String = "http://127.0.0.1"
    ) async throws -> (secret: String, keyID: String, webhookID: String) {
        let key = try await sim.call("POST", "/v2/notification/signing-keys", json: [:])
        #expect(key.status == 201)
        let secret = try #require(key.json["signing_key"]?.stringValue)
        let keyID = try #require(key.json["signing_key_id"]?.stringValue)
        let hook = try await sim.call("POST", "/v2/notification/webhooks", json: [
            "url": .string("\(base):\(receiver.port)/hooks/klarna"), "event_types": .array(eventTypes), "signing_key_id": .string(keyID),
        ])
        #expect(hook.status == 201)
        return (secret, keyID, try #require(hook.json["webhook_id"]?.stringValue))
    }

    @Test func stateChangesDeliverSignedWebhooks() async throws {
        let receiver = try await WebhookReceiver()
        try await withSimulator { sim in
            let (secret, keyID, webhookID) = try await register(sim, receiver: receiver)
            let created = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "EUR", "amount": 100])
            let id = try #require(created.json["payment_request_id"]?.stringValue)
            _ = try await sim.controlCall("POST", "/control/payment-requests/\(id)/advance", json: ["state": "COMPLETED"])
            let received = try await receiver.waitFor(count: 3)
            let types = received.compactMap { (try? JSONValue.parse($0.body))?["metadata"]?["event_type"]?.stringValue }
            #expect(Set(types) == ["payment.request.state-change.submitted", "payment.request.state-change.in-progress", "payment.request.state-change.completed"])
            for delivery in received {
                #expect(delivery.path == "/hooks/klarna")
                #expect(delivery.header("Klarna-Signing-Key-Id") == keyID)
                let signature = try #require(delivery.header("Klarna-Signature"))
                #expect(signature == WebhookDispatcher.signature(body: delivery.body, secret: secret))
                #expect(signature.allSatisfy { "0123456789abcdef".contains($0) } && signature.count == 64)
                let envelope = try JSONValue.parse(delivery.body)
                #expect(envelope["metadata"]?["webhook_id"]?.stringValue == webhookID)
                #expect(envelope["metadata"]?["subject_account_id"]?.stringValue == SimulatorHarness.merchant)
                #expect(envelope["metadata"]?["recipient_account_id"]?.stringValue == SimulatorHarness.acquirerKRN)
                #expect(envelope["metadata"]?["live"] == .bool(false))
                #expect(envelope["payload"]?["payment_request_id"]?.stringValue == id)
            }
        }
        try await receiver.stop()
    }

    @Test func failedDeliveriesAreRetriedOnTheScaledSchedule() async throws {
        let receiver = try await WebhookReceiver(statuses: [500, 503])
        try await withSimulator(webhookRetryScale: 0.001) { sim in
            let (_, _, webhookID) = try await register(sim, receiver: receiver, eventTypes: ["settlement.*"])
            let simulated = try await sim.call("POST", "/v2/notification/webhooks/\(webhookID)/simulate", json: ["event_type": "settlement.report.created"])
            #expect(simulated.status == 202)
            let received = try await receiver.waitFor(count: 3)
            try #require(received.count == 3)
            let eventIDs = Set(received.compactMap { (try? JSONValue.parse($0.body))?["metadata"]?["event_id"]?.stringValue })
            #expect(eventIDs.count == 1)
            #expect(Set(received.compactMap { $0.header("Klarna-Signature") }).count == 1)
            // 10 s and 2 min scaled by 0.001: ~10 ms then ~120 ms.
            let gap = Double(received[2].atNanoseconds - received[1].atNanoseconds) / 1e6
            #expect(gap >= 100)
            // The receiver has the third attempt before the simulator has read its answer and logged the delivery.
            var logged: JSONValue?
            let deadline = ContinuousClock.now + .seconds(30)
            while logged?["state"]?.stringValue != "DELIVERED" && ContinuousClock.now < deadline {
                logged = try await sim.controlCall("GET", "/control/webhook-deliveries").json["deliveries"]?.arrayValue?.first
                try await Task.sleep(for: .milliseconds(20))
            }
            let log = try #require(logged)
            #expect(log["state"]?.stringValue == "DELIVERED")
            #expect(log["attempts"]?.arrayValue?.compactMap { $0["status"]?.intValue } == [500, 503, 200])
        }
        try await receiver.stop()
    }

    @Test func httpsWebhooksReachTrustedReceiversOnly() async throws {
        let (receiverCA, _) = try SimulatorPKI.makeCA(name: "webhook receiver CA")
        let (strangerCA, _) = try SimulatorPKI.makeCA(name: "stranger CA")
        let trusted = try await WebhookReceiver(tls: try receiverCA.issueServer())
        let untrusted = try await WebhookReceiver(tls: try strangerCA.issueServer())
        let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("webhook-ca-\(UUID().uuidString).pem").path
        try receiverCA.certificatePEM.write(toFile: caFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: caFile) }
        try await withSimulator(webhookCAFile: caFile) { sim in
            let (secret, _, goodHook) = try await register(sim, receiver: trusted, eventTypes: ["settlement.*"], base: "https://localhost")
            let (_, _, badHook) = try await register(sim, receiver: untrusted, eventTypes: ["settlement.*"], base: "https://localhost")
            for hook in [goodHook, badHook] {
                let simulated = try await sim.call("POST", "/v2/notification/webhooks/\(hook)/simulate", json: ["event_type": "settlement.report.created"])
                #expect(simulated.status == 202)
            }
            let received = try await trusted.waitFor(count: 1)
            #expect(received.count == 1)
            let delivery = try #require(received.first)
            #expect(delivery.header("Klarna-Signature") == WebhookDispatcher.signature(body: delivery.body, secret: secret))
            // The stranger's certificate fails verification: attempts are logged as errors and retried, none arrive.
            var failedAttempts: [JSONValue] = []
            for _ in 0..<500 where failedAttempts.count < 2 {
                let deliveries = try await sim.controlCall("GET", "/control/webhook-deliveries").json["deliveries"]?.arrayValue ?? []
                failedAttempts = deliveries.first { $0["webhook_id"]?.stringValue == badHook }?["attempts"]?.arrayValue ?? []
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(failedAttempts.count >= 2)
            #expect(failedAttempts.allSatisfy { $0["status"] == .null && $0["error"]?.stringValue?.isEmpty == false })
            #expect(untrusted.received.isEmpty)
        }
        try await trusted.stop()
        try await untrusted.stop()
    }

    @Test func transactionEventsAndWebhookCRUD() async throws {
        let receiver = try await WebhookReceiver()
        try await withSimulator { sim in
            let (_, keyID, webhookID) = try await register(sim, receiver: receiver, eventTypes: ["payment.transaction.captured"])
            let authorized = try await sim.call("POST", "\(m1)/payment/authorize", json: ["currency": "EUR", "amount": 500, "capture": "NOW"])
            #expect(authorized.status == 201)
            let received = try await receiver.waitFor(count: 1)
            #expect((try? JSONValue.parse(received[0].body))?["metadata"]?["event_type"]?.stringValue == "payment.transaction.captured")

            #expect(try await sim.call("GET", "/v2/notification/webhooks").json["webhooks"]?.arrayValue?.count == 1)
            #expect(try await sim.call("GET", "/v2/notification/webhooks/\(webhookID)").json["url"] != nil)
            let disabled = try await sim.call("PATCH", "/v2/notification/webhooks/\(webhookID)", json: ["status": "DISABLED"])
            #expect(disabled.json["status"]?.stringValue == "DISABLED")
            #expect(try await sim.call("GET", "/v2/notification/webhooks", key: SimulatorHarness.otherAcquirerKey).json["webhooks"]?.arrayValue?.isEmpty == true)
            #expect(try await sim.call("DELETE", "/v2/notification/signing-keys/\(keyID)").status == 409)
            #expect(try await sim.call("DELETE", "/v2/notification/webhooks/\(webhookID)").status == 204)
            #expect(try await sim.call("GET", "/v2/notification/webhooks/\(webhookID)").status == 404)
            #expect(try await sim.call("GET", "/v2/notification/signing-keys/\(keyID)").json["signing_key"] == nil)
            #expect(try await sim.call("DELETE", "/v2/notification/signing-keys/\(keyID)").status == 204)
            let invalid = try await sim.call("POST", "/v2/notification/webhooks", json: ["url": "ftp://x"])
            #expect(invalid.status == 400)
            #expect((invalid.json["validation_errors"]?.arrayValue?.count ?? 0) == 3)
        }
        try await receiver.stop()
    }
}

@Suite struct CredentialTests {
    @Test func csrIsSignedAndTheNewCertificateWorks() async throws {
        try await withSimulator { sim in
            let (csr, key) = try SimulatorPKI.makeCSR(commonName: "ACQ1 rotated")
            let response = try await sim.call("POST", "/v2/account/integration/credentials/client-certificate", json: [
                "certificate_signing_request": .string(csr), "config": ["usage": "MTLS"],
            ])
            #expect(response.status == 201)
            let certificate = try #require(response.json["certificate"]?.stringValue)
            let credentialID = try #require(response.json["credential_id"]?.stringValue)
            let rotated = TestHTTPClient(port: sim.server.port, tls: TestTLS(trustRootsPEM: sim.ca.certificatePEM, clientCertificatePEM: certificate, clientKeyPEM: key))
            let call = try await rotated.send("GET", "\(m1)/payment/disputes", headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")])
            #expect(call.status == 200)
            try await rotated.close()
            let entry = try #require(try await sim.controlCall("GET", "/control/requests").json["requests"]?.arrayValue?.last)
            #expect(entry["client_certificate_subject"]?.stringValue?.contains("ACQ1 rotated") == true)
            #expect(entry["client_certificate_fingerprint"]?.stringValue == response.json["fingerprint_sha256"]?.stringValue)

            #expect(try await sim.call("GET", "/v2/account/integration/credentials/client-certificate").json["credentials"]?.arrayValue?.count == 1)
            #expect(try await sim.call("POST", "/v2/account/integration/credentials/client-certificate/\(credentialID)/revoke").json["status"]?.stringValue == "REVOKED")
            let garbage = try await sim.call("POST", "/v2/account/integration/credentials/client-certificate", json: ["certificate_signing_request": "nope"])
            #expect(garbage.status == 400)
            let enforcement = try await sim.call("PUT", "/v2/account/integration/client-certificates/enforcement", json: ["enforced_from": "NOW"])
            #expect(enforcement.json["enforced"] == .bool(true))
        }
    }

    @Test func apiKeysCanBeCreatedAndDisabled() async throws {
        try await withSimulator { sim in
            let listed = try await sim.call("GET", "/v2/account/integration/credentials/api-key")
            #expect(listed.json["credentials"]?.arrayValue?.count == 1)
            #expect(!listed.text.contains(SimulatorHarness.acquirerKey))
            let created = try await sim.call("POST", "/v2/account/integration/credentials/api-key", json: ["description": "rotation"])
            #expect(created.status == 201)
            let newKey = try #require(created.json["api_key"]?.stringValue)
            let id = try #require(created.json["credential_id"]?.stringValue)
            #expect(newKey.hasPrefix("klarna_test_api_"))
            #expect(try await sim.call("GET", "\(m1)/payment/disputes", key: newKey).status == 200)
            let disabled = try await sim.call("PATCH", "/v2/account/integration/credentials/api-key/\(id)", json: ["status": "DISABLED"])
            #expect(disabled.json["status"]?.stringValue == "DISABLED")
            #expect(try await sim.call("GET", "\(m1)/payment/disputes", key: newKey).status == 401)
            #expect(try await sim.call("DELETE", "/v2/account/integration/credentials/api-key/\(id)").status == 204)
            #expect(try await sim.call("GET", "/v2/account/integration/credentials/api-key").json["credentials"]?.arrayValue?.count == 1)
        }
    }
}
