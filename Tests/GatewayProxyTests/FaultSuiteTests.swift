import Foundation
import GatewayTestSupport
import KlarnaSimulator
import NIOConcurrencyHelpers
import Testing

/// Issue 7's fault suite: each case against the simulator's fault injection, through the `klarna-gateway serve`
/// binary. For each: the documented status and code (docs/resilience.md), the gateway still serves a normal call
/// afterwards, no POST without an idempotency key reaches the simulator twice, and the gateway's resident memory
/// comes back to its baseline after the load.
@Suite("Fault suite", .serialized)
struct FaultSuiteTests {
    /// Quick back-off, no breaker unless a case sets one, and no gateway-added keys, so that key-less POSTs exist and
    /// the rule "never sent twice without a key" is exercised.
    static let base: [String: String] = [
        "KGW_UPSTREAM__RETRIES__BACKOFF_BASE_MS": "20", "KGW_UPSTREAM__RETRIES__BACKOFF_CAP_MS": "200",
        "KGW_UPSTREAM__CIRCUIT_BREAKER__FAILURE_THRESHOLD": "100000", "KGW_UPSTREAM__IDEMPOTENCY_KEYS": "false",
        "KGW_POLICIES__RATE_LIMITS": "fault-rate-limits.yaml",
    ]
    /// Body size of load calls: big enough that keeping bodies of finished calls would show in memory.
    static let bodySize = 200_000
    /// How far above its baseline the gateway's memory may settle (allocator caches, pooled connections).
    static let slackKB = 24_000

    static func setUp(_ gw: GatewayHarness) async throws -> [String: String] {
        // The gateway's own limits would shape the load; this suite is about Klarna's faults.
        try "merchant:\n  test:\n    default: {rate: 100000, burst: 100000}\n".write(
            to: gw.directory.appendingPathComponent("fault-rate-limits.yaml"), atomically: true, encoding: .utf8)
        return [:]
    }

    static func post(_ gw: GatewayHarness, _ reference: String, key: String? = nil, size: Int = 0) -> (String, String, [(String, String)], [UInt8]?) {
        var headers = [gw.bearer("checkout"), ("Content-Type", "application/json")]
        if let key { headers.append(("Klarna-Idempotency-Key", key)) }
        return ("POST", FaultCalls.paymentRequests, headers, FaultCalls.paymentRequest(reference, size: size))
    }

    static func get(_ gw: GatewayHarness) -> (String, String, [(String, String)], [UInt8]?) {
        ("GET", FaultCalls.transaction, [gw.bearer("checkout")], nil)
    }

    /// Normal calls with load-sized bodies, so the baseline is taken with the allocator already warm.
    static func warmUp(_ fx: FaultGateway, concurrency: Int = 6) async throws -> Int {
        let gw = fx.gw
        let results = await runLoad(fx, count: 60, concurrency: concurrency) { i in
            i % 3 == 0 ? get(gw) : post(gw, "warm-\(i)-\(UUID().uuidString)", key: "warm-\(UUID().uuidString)", size: bodySize)
        }
        #expect(results.allSatisfy { $0.status == 200 || $0.status == 201 }, "warm-up: \(results.map(\.status))")
        try await Task.sleep(for: .milliseconds(300))
        return fx.residentKB
    }

    /// The after-checks of every case: normal calls succeed, no unsafe repeat, memory back near its baseline.
    static func expectRecovered(_ fx: FaultGateway, baselineKB: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let gw = fx.gw
        try await FaultCalls.expectNoUnsafeRepeats(gw, sourceLocation: sourceLocation)
        try await gw.clearFaults()
        let client = fx.client()
        let read = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
        let (method, path, headers, body) = post(gw, "after-\(UUID().uuidString)")
        let write = try await client.send(method, path, headers: headers, body: body)
        try await client.close()
        #expect(read.status == 200 && write.status == 201, "after the faults: \(read.status), \(write.status)", sourceLocation: sourceLocation)
        let settled = try await fx.settledMemory(baselineKB: baselineKB, slackKB: slackKB)
        print("memory: baseline \(baselineKB) kB, after load \(settled) kB")
        #expect(settled <= baselineKB + slackKB, "resident memory \(settled) kB did not come back to its baseline \(baselineKB) kB", sourceLocation: sourceLocation)
    }

    @Test("latency beyond the response-head timeout: reads retried then 504 GATEWAY_UPSTREAM_TIMEOUT, key-less writes 504 OUTCOME_UNKNOWN and sent once", .timeLimit(.minutes(4)))
    func latency() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__TIMEOUTS__RESPONSE_HEAD_MS"] = "2500"
        settings["KGW_UPSTREAM__RETRIES__MAX_ATTEMPTS"] = "2"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            try await gw.inject(#"{"kind": "latency", "delay_ms": 8000}"#)
            let client = fx.client()
            let read = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(read.status == 504 && read.errorCode == "GATEWAY_UPSTREAM_TIMEOUT")
            #expect(try fx.attempts(requestID: try #require(read.header("Klarna-Gateway-Request-Id"))) == 2)
            let keyed = Self.post(gw, "keyed-latency", key: "caller-key-latency")
            let write = try await client.send(keyed.0, keyed.1, headers: keyed.2, body: keyed.3)
            #expect(write.status == 504 && write.errorCode == "GATEWAY_UPSTREAM_OUTCOME_UNKNOWN")
            #expect(write.json["error_message"]?.stringValue?.contains("Klarna-Idempotency-Key: caller-key-latency") == true)
            try await client.close()
            let results = await runLoad(fx, count: 12) { i in Self.post(gw, "latency-\(i)", size: Self.bodySize) }
            for result in results {
                #expect(result.status == 504 && result.code == "GATEWAY_UPSTREAM_OUTCOME_UNKNOWN", "\(result)")
                #expect(result.message?.contains("no Klarna-Idempotency-Key") == true)
            }
            let posts = try await FaultCalls.receivedPosts(gw)
            #expect(posts.filter { $0.key == nil }.count == 12, "each key-less POST reached the simulator exactly once")
            #expect(posts.filter { $0.key == "caller-key-latency" }.count == 2, "the keyed POST was retried")
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("resets mid-response: with gateway-added keys every POST is retried safely; each caller gets 201 or 504 naming its key", .timeLimit(.minutes(4)))
    func resets() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__IDEMPOTENCY_KEYS"] = "true"
        // Half the attempts fail here: a budget of one retry per call keeps the case about resets, not the budget.
        settings["KGW_UPSTREAM__RETRIES__BUDGET_RATIO"] = "1.0"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            try await gw.inject(#"{"kind": "reset", "rate": 0.5}"#)
            let results = await runLoad(fx, count: 120) { i in i % 4 == 0 ? Self.get(gw) : Self.post(gw, "reset-\(i)", size: Self.bodySize) }
            #expect(results.allSatisfy { !$0.failed })
            var retried = 0
            for result in results {
                let documented = result.status == 200 || result.status == 201
                    || (result.status == 504 && result.code == "GATEWAY_UPSTREAM_OUTCOME_UNKNOWN")
                    || (result.status == 503 && result.code == "GATEWAY_UPSTREAM_UNAVAILABLE")
                #expect(documented, "\(result)")
                if result.code == "GATEWAY_UPSTREAM_OUTCOME_UNKNOWN" {
                    let key = try #require(result.gatewayKey)
                    #expect(result.message?.contains("Klarna-Idempotency-Key: \(key)") == true)
                }
                if result.status == 201 { #expect(result.gatewayKey != nil, "a POST's answer names the key the gateway added") }
                if let id = result.requestID, let attempts = try fx.attempts(requestID: id), attempts > 1 { retried += 1 }
            }
            #expect(retried > 0, "resets at a 50% rate must have caused retries")
            #expect(results.filter { $0.status == 201 }.count > 60, "most writes end well: \(results.map(\.status))")
            let posts = try await FaultCalls.receivedPosts(gw)
            #expect(posts.allSatisfy { $0.key != nil }, "every POST carried a key")
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("connection lost after the request was read: a key-less POST is answered 504 OUTCOME_UNKNOWN and never sent twice; a read is retried", .timeLimit(.minutes(3)))
    func dropAfterRead() async throws {
        try await withFaultGateway(settings: Self.base, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            try await gw.inject(#"{"kind": "drop", "method": "POST", "count": 30}"#)
            try await gw.inject(#"{"kind": "drop", "method": "GET", "count": 1}"#)
            let client = fx.client()
            let read = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(read.status == 200)
            #expect(try fx.attempts(requestID: try #require(read.header("Klarna-Gateway-Request-Id"))) == 2)
            try await client.close()
            let results = await runLoad(fx, count: 30) { i in Self.post(gw, "drop-\(i)", size: Self.bodySize) }
            #expect(results.allSatisfy { $0.status == 504 && $0.code == "GATEWAY_UPSTREAM_OUTCOME_UNKNOWN" }, "\(results.map { "\($0.status) \($0.code ?? "")" })")
            #expect(try await FaultCalls.receivedPosts(gw).count == 30)
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("503 bursts: reads retried to success; a key-less write gets Klarna's 503 unretried; retries stay within the 10% budget", .timeLimit(.minutes(4)))
    func unavailableBursts() async throws {
        try await withFaultGateway(settings: Self.base, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            try await gw.inject(#"{"kind": "error", "status": 503, "method": "GET", "count": 2}"#)
            let client = fx.client()
            let read = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(read.status == 200)
            #expect(try fx.attempts(requestID: try #require(read.header("Klarna-Gateway-Request-Id"))) == 3)
            try await gw.inject(#"{"kind": "error", "status": 503, "method": "POST", "count": 1}"#)
            let single = Self.post(gw, "unavailable-once")
            let write = try await client.send(single.0, single.1, headers: single.2, body: single.3)
            #expect(write.status == 503 && write.errorCode == "SERVICE_UNAVAILABLE", "Klarna's own 503 is relayed")
            try await client.close()
            // A long burst: every call fails, and retries may add only the budget (10% plus a burst of 10).
            try await gw.clearReceived()
            try await gw.inject(#"{"kind": "error", "status": 503}"#)
            let results = await runLoad(fx, count: 200) { i in i % 2 == 0 ? Self.get(gw) : Self.post(gw, "burst-\(i)", size: Self.bodySize) }
            #expect(results.allSatisfy { $0.status == 503 && $0.code == "SERVICE_UNAVAILABLE" })
            let received = try await gw.received().count
            #expect(received >= 200 && received <= 200 + 20 + 10, "Klarna received \(received) attempts for 200 calls")
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("503 bursts open the host's breaker: fast 503 GATEWAY_UPSTREAM_UNAVAILABLE with Retry-After, /readyz shows it, a probe closes it", .timeLimit(.minutes(3)))
    func breaker() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__FAILURE_THRESHOLD"] = "5"
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__OPEN_MS"] = "1500"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.inject(#"{"kind": "error", "status": 503}"#)
            try await gw.clearReceived()
            let results = await runLoad(fx, count: 40, concurrency: 1) { _ in Self.get(gw) }
            let open = results.filter { $0.code == "GATEWAY_UPSTREAM_UNAVAILABLE" }
            #expect(!open.isEmpty, "the breaker never opened: \(results.map { "\($0.status) \($0.code ?? "")" })")
            #expect(open.allSatisfy { $0.status == 503 && Int($0.retryAfter ?? "") ?? 0 >= 1 })
            #expect(results.allSatisfy { $0.status == 503 })
            let received = try await gw.received().count
            #expect(received < 40, "an open breaker forwards nothing (\(received) reached Klarna for 40 calls)")
            let states = try await fx.readiness()["upstream"]?["breakers"]
            #expect(states?["localhost:\(gw.simulator.port)"]?.stringValue == "open" || states?["localhost:\(gw.simulator.port)"]?.stringValue == "half-open")
            try await gw.clearFaults()
            // After the open time, one probe goes through and closes it (waited for, not timed).
            let client = fx.client()
            var closed = false
            for _ in 0..<200 where !closed {
                closed = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")]).status == 200
                if !closed { try await Task.sleep(for: .milliseconds(100)) }
            }
            try await client.close()
            #expect(closed)
            #expect(try await fx.readiness()["upstream"]?["breakers"]?["localhost:\(gw.simulator.port)"]?.stringValue == "closed")
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    /// Klarna answers two POSTs with a 429 naming a wait of at least 1 s (`keyedFault`, then `keylessFault`): the
    /// keyed write is sent again once, after that wait, and its caller gets Klarna's 201; the key-less write gets
    /// Klarna's 429 as it is.
    static func expectKlarna429sHandled(
        _ fx: FaultGateway, client: TestHTTPClient, keyedFault: String, keylessFault: String, reference: String, key: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let gw = fx.gw
        try await gw.inject(keyedFault)
        let keyed = Self.post(gw, reference + "-keyed", key: key)
        let write = try await client.send(keyed.0, keyed.1, headers: keyed.2, body: keyed.3)
        #expect(write.status == 201, sourceLocation: sourceLocation)
        #expect(try fx.attempts(requestID: try #require(write.header("Klarna-Gateway-Request-Id"))) == 2, sourceLocation: sourceLocation)
        let received = try await gw.received().filter { $0["method"]?.stringValue == "POST" }
        #expect(received.count == 2, sourceLocation: sourceLocation)
        if received.count == 2, let first = received[0]["received_at_ms"]?.intValue, let second = received[1]["received_at_ms"]?.intValue {
            #expect(second - first >= 1000, "the retry waited for the wait Klarna named", sourceLocation: sourceLocation)
        }
        try await gw.inject(keylessFault)
        let keyless = Self.post(gw, reference + "-keyless")
        let refused = try await client.send(keyless.0, keyless.1, headers: keyless.2, body: keyless.3)
        #expect(refused.status == 429 && refused.errorCode == "RATE_LIMITED", sourceLocation: sourceLocation)
    }

    @Test("429 with X-Ratelimit-Reset: retried after the reset when the call carries a key; a key-less write gets the 429", .timeLimit(.minutes(3)))
    func rateLimitedWithReset() async throws {
        try await withFaultGateway(settings: Self.base, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            let client = fx.client()
            let fault = #"{"kind": "error", "status": 429, "method": "POST", "count": 1, "delay_ms": 1000}"#
            try await Self.expectKlarna429sHandled(fx, client: client, keyedFault: fault, keylessFault: fault, reference: "limited", key: "caller-key-429")
            try await client.close()
            // The gateway holds the merchant for Klarna's reset after a 429; wait for it to pass before the after-checks.
            try await Task.sleep(for: .milliseconds(1200))
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("429 with Retry-After as an HTTP-date: honoured as the seconds form is; the retry waits for the date and the merchant is held until it", .timeLimit(.minutes(3)))
    func rateLimitedWithRetryAfterDate() async throws {
        try await withFaultGateway(settings: Self.base, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            let client = fx.client()
            // The key-less write's 429 names a date 15 s ahead, and the merchant is held here until that date, so the
            // next write is refused by the gateway itself, naming a wait longer than the 1 s it assumes when Klarna
            // names none (however slowly a loaded machine sends that write).
            try await Self.expectKlarna429sHandled(
                fx, client: client,
                keyedFault: #"{"kind": "error", "status": 429, "method": "POST", "count": 1, "delay_ms": 2000, "retry_after": "http-date"}"#,
                keylessFault: #"{"kind": "error", "status": 429, "method": "POST", "count": 1, "delay_ms": 15000, "retry_after": "http-date"}"#,
                reference: "dated", key: "caller-key-429-date")
            let next = Self.post(gw, "dated-held")
            let held = try await client.send(next.0, next.1, headers: next.2, body: next.3)
            #expect(held.status == 429 && held.errorCode == "GATEWAY_RATE_LIMITED", "\(held.status) \(held.text.prefix(200))")
            let wait = Int(held.header("Retry-After") ?? "") ?? 0
            #expect(wait >= 2, "the hold follows Klarna's date: Retry-After \(wait)")
            try await client.close()
            try await Task.sleep(for: .seconds(max(wait, 1)) + .milliseconds(200))
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("500 TIMEOUT: reads and keyed writes retried to success; a key-less write gets Klarna's 500 unretried", .timeLimit(.minutes(3)))
    func klarnaTimeout() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__RETRIES__BUDGET_RATIO"] = "1.0"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            try await gw.clearReceived()
            let client = fx.client()
            try await gw.inject(#"{"kind": "error", "status": 500, "error_code": "TIMEOUT", "count": 1}"#)
            let read = try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(read.status == 200)
            try await gw.inject(#"{"kind": "error", "status": 500, "error_code": "TIMEOUT", "count": 1}"#)
            let keyed = Self.post(gw, "timeout-keyed", key: "caller-key-500")
            #expect(try await client.send(keyed.0, keyed.1, headers: keyed.2, body: keyed.3).status == 201)
            try await gw.inject(#"{"kind": "error", "status": 500, "error_code": "TIMEOUT", "count": 1}"#)
            let keyless = Self.post(gw, "timeout-keyless")
            let answer = try await client.send(keyless.0, keyless.1, headers: keyless.2, body: keyless.3)
            #expect(answer.status == 500 && answer.errorCode == "TIMEOUT")
            try await client.close()
            // Under load, at a 30% rate.
            try await gw.inject(#"{"kind": "error", "status": 500, "error_code": "TIMEOUT", "rate": 0.3}"#)
            let results = await runLoad(fx, count: 120) { i in i % 2 == 0 ? Self.get(gw) : Self.post(gw, "timeout-\(i)", size: Self.bodySize) }
            for result in results {
                #expect(result.status == 200 || result.status == 201 || (result.status == 500 && result.code == "TIMEOUT"), "\(result)")
            }
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("overload: calls beyond the in-flight limit get a fast, audited 503 GATEWAY_OVERLOADED; connections beyond the connection limit are closed at once", .timeLimit(.minutes(3)))
    func overload() async throws {
        var settings = Self.base
        settings["KGW_LIMITS__MAX_IN_FLIGHT_REQUESTS"] = "2"
        settings["KGW_LIMITS__MAX_CONNECTIONS"] = "8"
        // The harness's 5 s response-head limit would end the slow calls below; this is the shipped default.
        settings["KGW_UPSTREAM__TIMEOUTS__RESPONSE_HEAD_MS"] = "60000"
        try await withFaultGateway(settings: settings, configure: Self.setUp) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx, concurrency: 2)
            // Two slow calls fill the gateway; the rest are refused at once (the slow ones are still in flight: slow
            // enough that a loaded machine cannot finish them before the refusals below).
            try await gw.inject(#"{"kind": "latency", "method": "GET", "delay_ms": 15000}"#)
            async let slow = runLoad(fx, count: 2, concurrency: 2) { _ in Self.get(gw) }
            // Until both slow calls hold their place (a fixed pause let the POSTs below overtake them on a loaded
            // machine, and the slow calls were the ones refused).
            let filled = ContinuousClock.now + .seconds(30)
            while try await fx.readiness()["upstream"]?["calls_in_flight"]?.intValue != 2 && ContinuousClock.now < filled {
                try await Task.sleep(for: .milliseconds(20))
            }
            var refused: [CallResult] = []
            let deadline = ContinuousClock.now + .seconds(60)
            while refused.isEmpty && ContinuousClock.now < deadline {
                refused = await runLoad(fx, count: 6, concurrency: 6) { i in Self.post(gw, "overload-\(UUID().uuidString)-\(i)") }.filter { $0.code == "GATEWAY_OVERLOADED" }
            }
            #expect(!refused.isEmpty && refused.allSatisfy { $0.status == 503 })
            let id = try #require(refused.first?.requestID)
            #expect(try fx.attempts(requestID: id) == 0, "an overloaded call is audited and forwards nothing")
            #expect(await slow.allSatisfy { $0.status == 200 })
            try await gw.clearFaults()
            // Connections: eight are served; a ninth is closed as it is accepted, before TLS (docs/security.md),
            // so it gets no answer at all.
            let clients = (0..<8).map { _ in fx.client() }
            for client in clients { #expect(try await client.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")]).status == 200) }
            let extra = fx.client()
            let ninth = try? await extra.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")])
            #expect(ninth == nil, "a connection beyond max_connections was answered: \(String(describing: ninth?.status))")
            try? await extra.close()
            for client in clients { try await client.close() }
            // The gateway counts a connection out when its close completes: wait for room before the after-checks.
            let probe = fx.client()
            var served = false
            for _ in 0..<300 where !served {
                served = (try? await probe.send("GET", FaultCalls.transaction, headers: [gw.bearer("checkout")]).status) == 200
                if !served { try await Task.sleep(for: .milliseconds(100)) }
            }
            try await probe.close()
            #expect(served)
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }
}
