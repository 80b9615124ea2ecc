import Foundation
import GatewayCore
import GatewayTestSupport
import Testing
@testable import KlarnaSimulator

@Suite struct IdempotencyTests {
    @Test func sameKeyReplaysAndDifferentBodyConflicts() async throws {
        try await withSimulator { sim in
            let body: JSONValue = ["currency": "EUR", "amount": 700]
            let first = try await sim.call("POST", "\(m1)/payment/requests", json: body, headers: [("Klarna-Idempotency-Key", "key-1")])
            let second = try await sim.call("POST", "\(m1)/payment/requests", json: body, headers: [("Klarna-Idempotency-Key", "key-1")])
            #expect(first.status == 201)
            #expect(second.status == 201)
            #expect(first.json["payment_request_id"] == second.json["payment_request_id"])
            let conflict = try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "EUR", "amount": 701], headers: [("Klarna-Idempotency-Key", "key-1")])
            #expect(conflict.status == 409)
            #expect(conflict.json["error_code"]?.stringValue == "RESOURCE_CONFLICT")
            let fresh = try await sim.call("POST", "\(m1)/payment/requests", json: body, headers: [("Klarna-Idempotency-Key", "key-2")])
            #expect(fresh.json["payment_request_id"] != first.json["payment_request_id"])
            let unkeyed = try await sim.call("POST", "\(m1)/payment/requests", json: body)
            #expect(unkeyed.json["payment_request_id"] != first.json["payment_request_id"])
        }
    }

    @Test func captureIsNotRepeatedOnReplay() async throws {
        try await withSimulator { sim in
            let authorized = try await sim.call("POST", "\(m1)/payment/authorize", json: ["currency": "EUR", "amount": 1_000])
            let id = try #require(authorized.json["payment_transaction_response"]?["payment_transaction"]?["payment_transaction_id"]?.stringValue)
            for _ in 0..<3 {
                let capture = try await sim.call("POST", "\(m1)/payment/transactions/\(id)/capture", json: ["capture_amount": 600], headers: [("Klarna-Idempotency-Key", "cap-1")])
                #expect(capture.status == 201)
            }
            #expect(try await sim.call("GET", "\(m1)/payment/transactions/\(id)").json["captured_amount"]?.intValue == 600)
        }
    }
}

@Suite struct RateLimitTests {
    @Test func perAccountLimitAnswers429WithHeaders() async throws {
        try await withSimulator(rateLimits: .init(perAccount: ["default": 0, "createPaymentRequest": 2], perAcquirer: ["default": 0])) { sim in
            // Two per second are allowed: the first two calls pass whichever windows they fall in.
            for _ in 0..<2 {
                #expect(try await sim.call("POST", "\(m1)/payment/requests", json: ["currency": "EUR", "amount": 1]).status == 201)
            }
            // Then calls at once, in rounds until one is refused: one after another, a loaded machine spaced them wider
            // than the window.
            var refused: TestHTTPResponse?
            for _ in 0..<10 where refused == nil {
                let answers = try await sim.callsAtOnce(6, "POST", json: ["currency": "EUR", "amount": 1]) { _ in "\(m1)/payment/requests" }
                #expect(answers.allSatisfy { [201, 429].contains($0.status) })
                refused = answers.first { $0.status == 429 }
            }
            let limited = try #require(refused)
            #expect(limited.json["error_code"]?.stringValue == "RATE_LIMITED")
            #expect(limited.json["error_type"]?.stringValue == "ACCESS_ERROR")
            #expect(limited.header("X-Ratelimit-Limit")?.hasPrefix("2, 2;w=1") == true)
            #expect(limited.header("X-Ratelimit-Remaining") == "0")
            #expect(limited.header("X-Ratelimit-Reset") == "1")
            // Other merchants and other operations are not affected.
            #expect(try await sim.call("POST", "/v2/accounts/\(SimulatorHarness.merchant2)/payment/requests", json: ["currency": "EUR", "amount": 1]).status == 201)
            #expect(try await sim.call("GET", "\(m1)/payment/disputes").status == 200)
        }
    }

    @Test func perAcquirerLimit() async throws {
        try await withSimulator(rateLimits: .init(perAccount: ["default": 0], perAcquirer: ["default": 3])) { sim in
            // Calls for two merchants at once, in rounds until one is refused: one after another, a loaded machine spaced
            // 40 of them over 51 s and none was.
            var statuses: [Int] = []
            for _ in 0..<10 where !statuses.contains(429) {
                let answers = try await sim.callsAtOnce(8, "GET") { index in
                    "/v2/accounts/\(index % 2 == 0 ? SimulatorHarness.merchant : SimulatorHarness.merchant2)/payment/disputes"
                }
                statuses += answers.map(\.status)
            }
            #expect(Set(statuses).isSubset(of: [200, 429]))
            #expect(statuses.contains(429))
        }
    }
}

@Suite struct FaultInjectionTests {
    @Test func errorFaultsForTheNextNRequests() async throws {
        try await withSimulator { sim in
            let added = try await sim.controlCall("POST", "/control/faults", json: ["kind": "error", "operation_id": "listDisputes", "count": 2])
            #expect(added.status == 201)
            let first = try await sim.call("GET", "\(m1)/payment/disputes")
            #expect(first.status == 500)
            #expect(first.json["error_code"]?.stringValue == "TIMEOUT")
            #expect(first.json["error_type"]?.stringValue == "TECHNICAL_ERROR")
            #expect(try await sim.call("GET", "\(m1)/payment/disputes").status == 500)
            #expect(try await sim.call("GET", "\(m1)/payment/disputes").status == 200)
            _ = try await sim.controlCall("POST", "/control/faults", json: ["kind": "error", "status": 503, "path_prefix": "/v2/settlements", "count": 1])
            let unavailable = try await sim.call("GET", "/v2/settlements")
            #expect(unavailable.status == 503)
        }
    }

    @Test func forbiddenWithoutBody() async throws {
        try await withSimulator(faults: [FaultRule(kind: .forbiddenNoBody, method: "GET", count: 1)]) { sim in
            let response = try await sim.call("GET", "\(m1)/payment/disputes")
            #expect(response.status == 403)
            #expect(response.body.isEmpty)
        }
    }

    @Test func resetMidResponse() async throws {
        try await withSimulator { sim in
            _ = try await sim.controlCall("POST", "/control/faults", json: ["kind": "reset", "path_prefix": "\(m1)/payment/disputes", "count": 1])
            await #expect(throws: (any Error).self) { _ = try await sim.call("GET", "\(m1)/payment/disputes") }
            // The client reconnects and the next call is normal.
            #expect(try await sim.call("GET", "\(m1)/payment/disputes").status == 200)
        }
    }

    @Test func latencyAndSlowBody() async throws {
        try await withSimulator { sim in
            _ = try await sim.controlCall("POST", "/control/faults", json: ["kind": "latency", "delay_ms": 300, "count": 1])
            let clock = ContinuousClock()
            let start = clock.now
            #expect(try await sim.call("GET", "\(m1)/payment/disputes").status == 200)
            #expect(clock.now - start >= .milliseconds(280))
            _ = try await sim.controlCall("POST", "/control/faults", json: ["kind": "slow-body", "delay_ms": 300, "count": 1])
            let slowStart = clock.now
            let slow = try await sim.call("GET", "\(m1)/payment/disputes")
            #expect(slow.status == 200)
            #expect(slow.json["payment_disputes"]?.arrayValue?.count == 2)
            #expect(clock.now - slowStart >= .milliseconds(250))
        }
    }

    @Test func rateFaultsRepeatUnderTheSameSeed() async throws {
        func pattern(seed: UInt64) async throws -> [Int] {
            var statuses: [Int] = []
            try await withSimulator(faults: [FaultRule(kind: .error, operationID: "listDisputes", rate: 0.5)], seed: seed) { sim in
                for _ in 0..<16 { statuses.append(try await sim.call("GET", "\(m1)/payment/disputes").status) }
            }
            return statuses
        }
        let first = try await pattern(seed: 99)
        #expect(first == (try await pattern(seed: 99)))
        #expect(first.contains(500) && first.contains(200))
    }

    @Test func controlListsAndClearsFaults() async throws {
        try await withSimulator { sim in
            _ = try await sim.controlCall("POST", "/control/faults", json: ["kind": "latency", "delay_ms": 1])
            #expect(try await sim.controlCall("GET", "/control/faults").json["faults"]?.arrayValue?.count == 1)
            #expect(try await sim.controlCall("POST", "/control/faults", json: ["kind": "bogus"]).status == 400)
            #expect(try await sim.controlCall("DELETE", "/control/faults").status == 204)
            #expect(try await sim.controlCall("GET", "/control/faults").json["faults"]?.arrayValue?.isEmpty == true)
            #expect(try await sim.controlCall("GET", "/control/health").json["status"]?.stringValue == "ok")
        }
    }
}
