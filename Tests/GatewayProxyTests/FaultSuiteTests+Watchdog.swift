import Foundation
import GatewayTestSupport
import Testing

/// The call's one timer (the watchdog) keeps every limit it replaced: a response body read must come within
/// `body_idle_ms` of the last, a body that keeps coming is not cut, and `total_ms` ends a call that waits.
extension FaultSuiteTests {
    @Test("body idle: a body that keeps coming is relayed; one that stalls is cut, retried, then 504 GATEWAY_UPSTREAM_TIMEOUT", .timeLimit(.minutes(3)))
    func bodyIdle() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__TIMEOUTS__BODY_IDLE_MS"] = "500"
        settings["KGW_UPSTREAM__RETRIES__MAX_ATTEMPTS"] = "2"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let client = fx.client()
            // Ten pieces 100 ms apart: each read comes well within the limit, so the timer must re-arm, not fire.
            try await gw.inject(#"{"kind": "slow-body", "delay_ms": 1000, "count": 1}"#)
            let steady = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(steady.status == 200, "a body arriving in time was cut: \(steady.status) \(steady.errorCode ?? "")")
            // Ten pieces 2 s apart: the first read is already late, for both attempts.
            try await gw.inject(#"{"kind": "slow-body", "delay_ms": 20000, "count": 2}"#)
            let stalled = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(stalled.status == 504 && stalled.errorCode == "GATEWAY_UPSTREAM_TIMEOUT", "\(stalled.status) \(stalled.errorCode ?? "")")
            #expect(try fx.attempts(requestID: try #require(stalled.header("Klarna-Gateway-Request-Id"))) == 2)
            // The connection is still good for the next call.
            let after = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(after.status == 200)
            try await client.close()
        }
    }

    @Test("total deadline: a call waiting on a slow answer ends with a 504 at total_ms, long before the response-head limit", .timeLimit(.minutes(3)))
    func totalDeadline() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__TIMEOUTS__TOTAL_MS"] = "1500"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let client = fx.client()
            try await gw.inject(#"{"kind": "latency", "delay_ms": 30000, "count": 1}"#)
            let read = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(read.status == 504, "\(read.status) \(read.errorCode ?? "")")
            #expect(read.errorCode?.hasPrefix("GATEWAY_UPSTREAM_") == true)
            // One attempt: the deadline, not the 60 s response-head limit, ended it (a head timeout would retry).
            #expect(try fx.attempts(requestID: try #require(read.header("Klarna-Gateway-Request-Id"))) == 1)
            try await client.close()
        }
    }
}
