import GatewayTestSupport
import Testing
@testable import KlarnaSimulator

@Suite struct PaymentFlowTests {
    @Test func paymentRequestLifecycleToAuthorizedTransaction() async throws {
        try await withSimulator { sim in
            let created = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "EUR", "amount": 12_500, "payment_request_reference": "order-1"])
            #expect(created.status == 201)
            #expect(created.json["state"]?.stringValue == "SUBMITTED")
            let id = try #require(created.json["payment_request_id"]?.stringValue)
            #expect(created.json["state_context"]?["customer_interaction"]?["payment_request_url"] != nil)

            let updated = try await sim.call("PATCH", "\(m1)/payment/requests/\(id)", json: ["amount": 13_000])
            #expect(updated.json["amount"]?.intValue == 13_000)

            let advanced = try await sim.controlCall("POST", "/control/payment-requests/\(id)/advance", json: ["state": "COMPLETED"])
            #expect(advanced.status == 200)
            let read = try await sim.call("GET", "\(m1)/payment/requests/\(id)")
            #expect(read.json["state"]?.stringValue == "COMPLETED")
            let token = try #require(read.json["state_context"]?["payment_token"]?.stringValue)

            // Final states are final.
            let cancel = try await sim.call("DELETE", "\(m1)/payment/requests/\(id)")
            #expect(cancel.status == 403)
            let update = try await sim.call("PATCH", "\(m1)/payment/requests/\(id)", json: ["amount": 1])
            #expect(update.status == 403)
            let again = try await sim.controlCall("POST", "/control/payment-requests/\(id)/advance", json: ["state": "DECLINED"])
            #expect(again.status == 403)

            let authorized = try await sim.call("POST", "\(m1)/payment/authorize", json: [
                "currency": "EUR", "payment_token": .string(token),
                "request_payment_transaction": ["amount": 13_000, "payment_transaction_reference": "tx-1", "capture": "NOW"],
            ])
            #expect(authorized.status == 201)
            let transaction = try #require(authorized.json["payment_transaction_response"]?["payment_transaction"])
            #expect(authorized.json["payment_transaction_response"]?["result"]?.stringValue == "APPROVED")
            #expect(transaction["state"]?.stringValue == "COMPLETED")
            #expect(transaction["captured_amount"]?.intValue == 13_000)
            #expect(transaction["payment_request_id"]?.stringValue == id)
        }
    }

    @Test func cancelAndDeclineAndOwnership() async throws {
        try await withSimulator { sim in
            let first = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "SEK", "amount": 100])
            let id = try #require(first.json["payment_request_id"]?.stringValue)
            #expect(try await sim.call("DELETE", "\(m1)/payment/requests/\(id)").json["state"]?.stringValue == "CANCELED")
            let second = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "SEK", "amount": 100])
            let other = try #require(second.json["payment_request_id"]?.stringValue)
            _ = try await sim.controlCall("POST", "/control/payment-requests/\(other)/advance", json: ["state": "IN_PROGRESS"])
            #expect(try await sim.call("GET", "\(m1)/payment/requests/\(other)").json["state"]?.stringValue == "IN_PROGRESS")
            _ = try await sim.controlCall("POST", "/control/payment-requests/\(other)/advance", json: ["state": "DECLINED"])
            #expect(try await sim.call("GET", "\(m1)/payment/requests/\(other)").json["state"]?.stringValue == "DECLINED")
            // Another merchant of the same acquirer cannot see it.
            let hidden = try await sim.call("GET", "/v2/accounts/\(SimulatorHarness.merchant2)/payment/requests/\(other)")
            #expect(hidden.status == 404)
            let third = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "SEK", "amount": 100])
            let expiring = try #require(third.json["payment_request_id"]?.stringValue)
            _ = try await sim.controlCall("POST", "/control/payment-requests/\(expiring)/advance", json: ["state": "EXPIRED"])
            #expect(try await sim.call("GET", "\(m1)/payment/requests/\(expiring)").json["state"]?.stringValue == "EXPIRED")
        }
    }

    @Test func validationErrorsHaveKlarnasShape() async throws {
        try await withSimulator { sim in
            let response = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "euro", "amount": -5])
            #expect(response.status == 400)
            #expect(response.json["error_type"]?.stringValue == "INPUT_ERROR")
            #expect(response.json["error_code"]?.stringValue == "VALIDATION_ERROR")
            #expect(response.json["error_id"]?.stringValue?.count == 36)
            let fields = response.json["validation_errors"]?.arrayValue?.compactMap { $0["parameter"]?.stringValue } ?? []
            #expect(fields.sorted() == ["amount", "currency"])
            let missing = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "EUR"])
            #expect(missing.json["validation_errors"]?.arrayValue?.first?["reason"]?.stringValue == "is required")
            let broken = try await sim.api.send("POST", "\(m1)/payment/requests", headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")], body: Array("{nope".utf8))
            #expect(broken.status == 400)
            #expect(broken.json["error_code"]?.stringValue == "VALIDATION_ERROR")
        }
    }

    @Test func transactionAmountsAreEnforcedOverTheWire() async throws {
        try await withSimulator { sim in
            let authorized = try await sim.call("POST", "\(m1)/payment/authorize", json: ["currency": "EUR", "request_payment_transaction": ["amount": 10_000]])
            let transaction = try #require(authorized.json["payment_transaction_response"]?["payment_transaction"]?["payment_transaction_id"]?.stringValue)
            #expect(authorized.json["payment_transaction_response"]?["payment_transaction"]?["state"]?.stringValue == "AUTHORIZED")
            let path = "\(m1)/payment/transactions/\(transaction)"

            let capture = try await sim.call("POST", "\(path)/capture", json: ["capture_amount": 4_000, "capture_reference": "c1"])
            #expect(capture.status == 201)
            let captureID = try #require(capture.json["payment_capture_id"]?.stringValue)
            let over = try await sim.call("POST", "\(path)/capture", json: ["capture_amount": 7_000])
            #expect(over.status == 403)
            #expect(over.json["error_code"]?.stringValue == "OPERATION_FORBIDDEN")
            let overRefund = try await sim.call("POST", "\(path)/refund", json: ["refund_amount": 4_001])
            #expect(overRefund.status == 403)
            let refund = try await sim.call("POST", "\(path)/refund", json: ["refund_amount": 1_000, "refund_reference": "r1"])
            #expect(refund.status == 201)
            let refundID = try #require(refund.json["payment_refund_id"]?.stringValue)
            let captureRefund = try await sim.call("POST", "\(m1)/payment/captures/\(captureID)/refund", json: ["refund_amount": 3_001])
            #expect(captureRefund.status == 403)
            #expect(try await sim.call("POST", "\(m1)/payment/captures/\(captureID)/refund", json: ["refund_amount": 500]).status == 201)

            let references = try await sim.call("PATCH", path, json: ["payment_transaction_reference": "new-ref"])
            #expect(references.json["payment_transaction_reference"]?.stringValue == "new-ref")
            let reauthorized = try await sim.call("POST", "\(path)/authorize", json: ["amount": 12_000])
            #expect(reauthorized.json["payment_transaction_response"]?["payment_transaction"]?["authorized_amount"]?.intValue == 8_000)
            let voided = try await sim.call("POST", "\(path)/void")
            #expect(voided.status == 200)
            #expect(voided.json["state"]?.stringValue == "COMPLETED")
            #expect(voided.json["voided_amount"]?.intValue == 8_000)

            let read = try await sim.call("GET", path)
            #expect(read.json["captured_amount"]?.intValue == 4_000)
            #expect(read.json["refunded_amount"]?.intValue == 1_500)
            #expect(try await sim.call("GET", "\(m1)/payment/captures/\(captureID)").json["refunded_amount"]?.intValue == 500)
            #expect(try await sim.call("GET", "\(m1)/payment/refunds/\(refundID)").json["amount"]?.intValue == 1_000)
            #expect(try await sim.call("GET", "/v2/accounts/\(SimulatorHarness.merchant2)/payment/transactions/\(transaction)").status == 404)
            // Seeded transaction for benchmarks.
            #expect(try await sim.call("GET", "\(m1)/payment/transactions/krn:payment:eu1:transaction:seed-M1").status == 200)
        }
    }

    @Test func captureLimitOverTheWire() async throws {
        try await withSimulator { sim in
            let authorized = try await sim.call("POST", "\(m1)/payment/authorize", json: ["currency": "EUR", "amount": 1_000])
            let transaction = try #require(authorized.json["payment_transaction_response"]?["payment_transaction"]?["payment_transaction_id"]?.stringValue)
            for _ in 0..<200 {
                #expect(try await sim.call("POST", "\(m1)/payment/transactions/\(transaction)/capture", json: ["capture_amount": 1]).status == 201)
            }
            let refused = try await sim.call("POST", "\(m1)/payment/transactions/\(transaction)/capture", json: ["capture_amount": 1])
            #expect(refused.status == 403)
            #expect(refused.json["error_message"]?.stringValue?.contains("200 captures") == true)
        }
    }

    @Test func disputesAndSettlements() async throws {
        try await withSimulator { sim in
            let disputes = try await sim.call("GET", "\(m1)/payment/disputes")
            let dispute = try #require(disputes.json["payment_disputes"]?.arrayValue?.first?["payment_dispute_id"]?.stringValue)
            #expect(try await sim.call("GET", "\(m1)/payment/disputes/\(dispute)").json["state"]?.stringValue == "OPEN")
            let responded = try await sim.call("POST", "\(m1)/payment/disputes/\(dispute)/respond", json: ["message": "Delivered, see tracking"])
            #expect(responded.json["state"]?.stringValue == "UNDER_REVIEW")
            let accepted = try await sim.call("POST", "\(m1)/payment/disputes/\(dispute)/accept-loss")
            #expect(accepted.json["state"]?.stringValue == "LOST")
            #expect(try await sim.call("POST", "\(m1)/payment/disputes/\(dispute)/accept-loss").status == 403)

            let settlements = try await sim.call("GET", "/v2/settlements")
            let settlement = try #require(settlements.json["settlements"]?.arrayValue?.first?["settlement_id"]?.stringValue)
            #expect(try await sim.call("GET", "/v2/settlements/\(settlement)").status == 200)
            #expect(try await sim.call("GET", "/v2/settlements/\(settlement)/transactions").json["transactions"]?.arrayValue?.count == 5)
            let csv = try await sim.call("GET", "/v2/settlements/\(settlement)/csv")
            #expect(csv.header("Content-Type")?.hasPrefix("text/csv") == true)
            #expect(csv.text.split(separator: "\n").count == 6)
            // Another acquirer's settlements are invisible.
            #expect(try await sim.call("GET", "/v2/settlements/\(settlement)", key: SimulatorHarness.otherAcquirerKey).status == 404)
        }
    }
}
