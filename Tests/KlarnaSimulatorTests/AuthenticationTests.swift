import GatewayCore
import GatewayTestSupport
import Testing
@testable import KlarnaSimulator

@Suite struct AuthenticationTests {
    @Test func handshakeWithoutClientCertificateIsRefused() async throws {
        try await withSimulator { sim in
            let anonymous = TestHTTPClient(port: sim.server.port, tls: TestTLS(trustRootsPEM: sim.ca.certificatePEM))
            await #expect(throws: (any Error).self) {
                _ = try await anonymous.send("GET", "\(m1)/payment/disputes", headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")])
            }
            try await anonymous.close()
        }
    }

    @Test func certificateFromAnotherCAIsRefused() async throws {
        try await withSimulator { sim in
            let foreign = try TestPKI(name: "someone else")
            let identity = try foreign.issueClient(commonName: "intruder")
            let client = TestHTTPClient(port: sim.server.port, tls: TestTLS(trustRootsPEM: sim.ca.certificatePEM, clientCertificatePEM: identity.certificatePEM, clientKeyPEM: identity.privateKeyPEM))
            await #expect(throws: (any Error).self) {
                _ = try await client.send("GET", "\(m1)/payment/disputes", headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")])
            }
            try await client.close()
        }
    }

    @Test func optionalCertificateModeAnswers401NotPresent() async throws {
        try await withSimulator(requireClientCertificate: false) { sim in
            let anonymous = TestHTTPClient(port: sim.server.port, tls: TestTLS(trustRootsPEM: sim.ca.certificatePEM))
            let response = try await anonymous.send("GET", "\(m1)/payment/disputes", headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")])
            #expect(response.status == 401)
            #expect(response.header("Klarna-Mtls-Verification-Status") == "NOT_PRESENT")
            try await anonymous.close()
        }
    }

    @Test func keysAreCheckedInBothBasicForms() async throws {
        try await withSimulator { sim in
            let wrong = try await sim.call("GET", "\(m1)/payment/disputes", key: "klarna_test_api_wrong", headers: [("Partner-Correlation-Id", "abc123")])
            #expect(wrong.status == 401)
            #expect(wrong.json["error_code"]?.stringValue == "UNAUTHORIZED")
            #expect(wrong.json["error_type"]?.stringValue == "ACCESS_ERROR")
            #expect(wrong.header("Klarna-Mtls-Verification-Status") == "VALID")
            #expect(wrong.header("Partner-Correlation-Id") == "abc123")
            let missing = try await sim.call("GET", "\(m1)/payment/disputes", key: nil)
            #expect(missing.status == 401)
            let raw = try await sim.call("GET", "\(m1)/payment/disputes")
            #expect(raw.status == 200)
            let standard = "Basic " + Array(":\(SimulatorHarness.acquirerKey)".utf8).base64
            let viaStandard = try await sim.api.send("GET", "\(m1)/payment/disputes", headers: [("Authorization", standard)])
            #expect(viaStandard.status == 200)
            #expect(viaStandard.json["payment_disputes"]?.arrayValue?.count == 2)
            let live = try await sim.call("GET", "\(m1)/payment/disputes", key: "klarna_live_api_" + "whatever")
            #expect(live.status == 401)
        }
    }

    @Test func accountsTheKeyMayNotActForAreRefused() async throws {
        try await withSimulator { sim in
            let unknown = try await sim.call("GET", "/v2/accounts/krn:partner:global:account:test:NOPE/payment/disputes")
            #expect(unknown.status == 404)
            #expect(unknown.json["error_code"]?.stringValue == "RESOURCE_NOT_FOUND")
            let foreign = try await sim.call("GET", "/v2/accounts/\(SimulatorHarness.otherMerchant)/payment/disputes")
            #expect(foreign.status == 403)
            #expect(foreign.json["error_code"]?.stringValue == "OPERATION_FORBIDDEN")
            // A merchant's own key works for its own account and direct calls, not for acquirer calls.
            let own = try await sim.call("GET", "\(m1)/payment/disputes", key: SimulatorHarness.merchantKey)
            #expect(own.status == 200)
            let sibling = try await sim.call("GET", "/v2/accounts/\(SimulatorHarness.merchant2)/payment/disputes", key: SimulatorHarness.merchantKey)
            #expect(sibling.status == 403)
            let acquirerOnly = try await sim.call("GET", "/v2/notification/webhooks", key: SimulatorHarness.merchantKey)
            #expect(acquirerOnly.status == 403)
            let direct = try await sim.call("POST", "/v2/payment/requests", json: ["currency": "EUR", "amount": 100], key: SimulatorHarness.merchantKey)
            #expect(direct.status == 201)
            let directByAcquirer = try await sim.call("POST", "/v2/payment/requests", json: ["currency": "EUR", "amount": 100])
            #expect(directByAcquirer.status == 403)
        }
    }

    @Test func recordShowsWhatWasReceived() async throws {
        try await withSimulator(recordedHeaders: ["X-Test-Run"]) { sim in
            _ = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "EUR", "amount": 500], headers: [
                ("Partner-Correlation-Id", "corr1"), ("Klarna-Idempotency-Key", "idem-1"), ("X-Test-Run", "run-9"),
                ("Klarna-Integration-Metadata", #"{"integrator":{"name":"gw"}}"#),
            ])
            let record = try await sim.controlCall("GET", "/control/requests")
            #expect(record.status == 200)
            let entries = record.json["requests"]?.arrayValue ?? []
            let entry = try #require(entries.last)
            #expect(entry["method"]?.stringValue == "POST")
            #expect(entry["path"]?.stringValue == "\(m1)/payment/requests")
            #expect(entry["operation_id"]?.stringValue == "createPaymentRequest")
            #expect(entry["account"]?.stringValue == SimulatorHarness.merchant)
            #expect(entry["authorization"]?.stringValue == "Basic \(SimulatorHarness.acquirerKey)")
            #expect(entry["client_certificate_subject"]?.stringValue?.contains("ACQ1 gateway") == true)
            let fingerprint = try SimulatorPKI.fingerprint(of: .init(pemEncoded: sim.client.certificatePEM))
            #expect(entry["client_certificate_fingerprint"]?.stringValue == fingerprint)
            #expect(entry["headers"]?["Partner-Correlation-Id"]?.stringValue == "corr1")
            #expect(entry["headers"]?["Klarna-Idempotency-Key"]?.stringValue == "idem-1")
            #expect(entry["headers"]?["X-Test-Run"]?.stringValue == "run-9")
            #expect(entry["headers"]?["Klarna-Integration-Metadata"] != nil)
            #expect(entry["body_size"]?.intValue == JSONValue.object([("currency", "EUR"), ("amount", 500)]).bytes.count)
            #expect(entry["body_sha256"]?.stringValue?.count == 64)
            #expect(entry["status"]?.intValue == 201)
            let added = try await sim.controlCall("POST", "/control/recorded-headers", json: ["headers": ["X-Late"]])
            #expect(added.json["headers"]?.arrayValue?.contains("X-Late") == true)
            _ = try await sim.call("GET", "\(m1)/payment/disputes", headers: [("X-Late", "yes")])
            let late = try #require(try await sim.controlCall("GET", "/control/requests?since=1").json["requests"]?.arrayValue?.last)
            #expect(late["headers"]?["X-Late"]?.stringValue == "yes")
            #expect(late["sequence"]?.intValue == 2)
            #expect(try await sim.controlCall("DELETE", "/control/requests").status == 204)
            #expect(try await sim.controlCall("GET", "/control/requests").json["requests"]?.arrayValue?.isEmpty == true)
        }
    }
}
