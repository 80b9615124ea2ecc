import Foundation
import GatewayApp
import GatewayCore
import GatewayProxy
import GRDB
import GatewayTestSupport
import KlarnaSimulator
import Prometheus
import Synchronization
import NIOPosix
import NIOCore
import Testing

/// Issue 19 end to end: a real gateway over TLS in front of the simulator, exporting to a real OTLP/HTTP receiver
/// the test runs, which decodes the protobuf the gateway sends.
@Suite("Tracing end to end")
struct TracingTests {
    static let transaction = "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1"
    static let callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let callerSpan = "00f067aa0ba902b7"
    /// One call a second at the merchant level, shaped (held up to 10 s) rather than refused, so the second of two
    /// calls in a row waits.
    static let shaping = """
        merchant:
          test:
            default: {rate: 0.2, burst: 1}
        options:
          merchant: {max_delay_ms: 10000}
        """

    static func tracing(_ receiver: OTLPReceiver, sampling: String = "{ratio: 1}") -> String {
        "enabled: true, endpoint: \"\(receiver.endpoint)\", export_interval_ms: 100, export_timeout_ms: 10000, sampling: \(sampling)"
    }

    /// Waits for the call span of `requestID`; returns it with every span received so far.
    static func callSpan(_ requestID: String, from receiver: OTLPReceiver) async throws -> (call: OTLPReceiver.Span, spans: [OTLPReceiver.Span]) {
        let spans = try await receiver.waitFor { $0.contains { $0.isCall(requestID) } }
        return (try #require(spans.first { $0.isCall(requestID) }), spans)
    }

    /// A refused call's span: the gateway's error code as attribute and as error status, and the answer's status.
    static func expectRefusal(_ call: OTLPReceiver.Span, code: String, status: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(call.attributes["klarna.gateway.error_code"] == code, sourceLocation: sourceLocation)
        #expect(call.attributes["http.response.status_code"] == "\(status)", sourceLocation: sourceLocation)
        #expect(call.statusCode == 2 && call.statusMessage == code, sourceLocation: sourceLocation)
    }

    @Test("a caller's traceparent is continued: the call's server span is its child, with the call's attributes, one child span per stage and the trace id as correlation id; Klarna never sees the trace headers")
    func continued() async throws {
        let receiver = try await OTLPReceiver()
        try await withGateway(rateLimits: Self.shaping, tracing: Self.tracing(receiver)) { gw in
            let client = gw.client()
            try await gw.clearReceived()
            let traced = try await client.send("GET", Self.transaction, headers: [
                gw.bearer("checkout"), ("traceparent", "00-\(Self.callerTrace)-\(Self.callerSpan)-01"), ("tracestate", "acme=7"),
            ])
            #expect(traced.status == 200)
            // The second call, right behind, is shaped by the merchant's limit; it starts a trace of its own.
            let fresh = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            #expect(fresh.status == 200)
            try await client.close()
            let freshID = try #require(fresh.header("Klarna-Gateway-Request-Id"))

            let spans = try await receiver.waitFor { spans in
                spans.filter { $0.name == CallTracing.Name.call }.count >= 2 && spans.filter { $0.name == CallTracing.Name.auditOutcome }.count >= 2
            }
            let call = try #require(spans.first { $0.name == CallTracing.Name.call && $0.traceID == Self.callerTrace }, "\(spans.map(\.name))")
            #expect(call.parentSpanID == Self.callerSpan)
            #expect(call.kind == 2, "a server span")
            #expect(call.traceState == "acme=7")
            #expect(call.attributes["klarna.gateway.request_id"] == traced.header("Klarna-Gateway-Request-Id"))
            #expect(call.attributes["klarna.gateway.caller"] == "checkout")
            #expect(call.attributes["klarna.merchant.id"] == "m1")
            #expect(call.attributes["klarna.operation.family"] == "payment-transaction")
            #expect(call.attributes["klarna.operation.id"]?.isEmpty == false)
            #expect(call.attributes["klarna.rate_limit.category"]?.isEmpty == false)
            #expect(call.attributes["klarna.environment"] == "test")
            #expect(call.attributes["http.response.status_code"] == "200")
            #expect(call.attributes["klarna.gateway.upstream_attempts"] == "1")
            #expect(call.attributes["klarna.idempotency_key"] == "none")
            #expect(call.attributes["klarna.gateway.correlation_id"] == Self.callerTrace)
            #expect(call.attributes["klarna.gateway.error_code"] == nil && call.statusCode != 2)
            // The merchant's KRN (its account) is never an attribute value.
            #expect(!spans.flatMap(\.attributes.values).contains { $0.contains("krn:partner") }, "a KRN in span attributes")

            let children = spans.filter { $0.parentSpanID == call.spanID }
            #expect(children.allSatisfy { $0.traceID == Self.callerTrace })
            for name in [CallTracing.Name.rateLimit, CallTracing.Name.auditIntent, CallTracing.Name.attempt, CallTracing.Name.auditOutcome] {
                #expect(children.filter { $0.name == name }.count == 1, "\(name) under the call span: \(children.map(\.name))")
            }
            let attempt = try #require(children.first { $0.name == CallTracing.Name.attempt })
            #expect(attempt.kind == 3, "a client span")
            #expect(attempt.attributes["klarna.gateway.attempt"] == "1")
            #expect(attempt.attributes["http.response.status_code"] == "200")
            #expect(attempt.events.contains("first byte"))
            // The gateway's first call opens its connection: TCP, then TLS, then Klarna's first byte.
            #expect(attempt.events == ["tcp connected", "tls handshake done", "first byte"], "\(attempt.events)")

            // The shaped call: its own trace, its rate-limit span shows the wait, and its trace id is what Klarna got.
            let second = try #require(spans.first { $0.isCall(freshID) })
            #expect(second.traceID != Self.callerTrace && second.parentSpanID.isEmpty)
            let limit = try #require(spans.first { $0.name == CallTracing.Name.rateLimit && $0.parentSpanID == second.spanID })
            #expect(limit.events.contains("shaping wait"), "\(limit.events)")

            // Klarna: no trace headers, the trace id as Partner-Correlation-Id.
            let received = try await gw.received()
            #expect(received.count == 2)
            for entry in received {
                #expect(entry["headers"]?["traceparent"] == nil || entry["headers"]?["traceparent"] == .null, "Klarna received a traceparent")
            }
            #expect(received.first?["headers"]?["Partner-Correlation-Id"]?.stringValue == Self.callerTrace)
            #expect(received.last?["headers"]?["Partner-Correlation-Id"]?.stringValue == second.traceID)

            // The access lines name the trace and the gateway's span.
            let access = gw.logs.text.split(separator: "\n").filter { $0.contains("request_id=\(traced.header("Klarna-Gateway-Request-Id") ?? "-")") && $0.contains("phase=outcome") }
            #expect(access.count == 1 && access.allSatisfy { $0.contains("trace_id=\(Self.callerTrace)") && $0.contains("span_id=\(call.spanID)") }, "\(access)")

            // One value joins the trace, the audit record and Klarna's support view; the span names the release the
            // record does (the one the call was routed by).
            await gw.audit.flush()
            let tracedID = try #require(traced.header("Klarna-Gateway-Request-Id"))
            let recorded = try await DatabaseQueue(path: gw.auditPath).read { db in
                try Row.fetchAll(db, sql: "SELECT phase, correlation_id, release FROM audit_records WHERE request_id = ? ORDER BY seq", arguments: [tracedID])
                    .map { (phase: $0["phase"] as String, correlation: $0["correlation_id"] as String?, release: $0["release"] as String?) }
            }
            #expect(recorded.map(\.phase) == ["intent", "outcome"])
            #expect(recorded.allSatisfy { $0.correlation == Self.callerTrace }, "\(recorded)")
            let release = try #require(recorded.last?.release, "no release in the audit record")
            #expect(call.attributes["klarna.release"] == release)

            // Nothing secret leaves in the spans.
            let exported = receiver.rawBodies.map { String(decoding: $0, as: UTF8.self) }.joined()
            for secret in gw.plantedSecrets { #expect(!exported.contains(secret), "a planted secret was exported in a span") }
        }
        try await receiver.stop()
    }

    @Test("at 0% sampling: an unsampled call makes no span, a caller's sampled trace is followed, a refusal still gets its span with its error code, and so does a call Klarna answers 503 (errors sampling)")
    func refusalAndSampling() async throws {
        let receiver = try await OTLPReceiver()
        try await withGateway(tracing: Self.tracing(receiver, sampling: "{ratio: 0, parent_based: true, errors: true}")) { gw in
            let client = gw.client()
            let unsampled = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            #expect(unsampled.status == 200)
            let followed = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout"), ("traceparent", "00-\(Self.callerTrace)-\(Self.callerSpan)-01")])
            #expect(followed.status == 200)
            let refused = try await client.send("GET", "/v2/accounts/m3/payment/transactions/krn:payment:eu1:transaction:seed-M3", headers: [gw.bearer("checkout")])
            #expect(refused.errorCode == "GATEWAY_FORBIDDEN")
            // Klarna answering 503 to every attempt: the gateway relays Klarna's own 503, no refusal of its own, and
            // `errors` traces the call all the same.
            try await gw.inject(#"{"kind": "error", "status": 503, "method": "GET"}"#)
            let failed = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            #expect(failed.status == 503 && failed.errorCode?.hasPrefix("GATEWAY_") == false, "\(failed.status) \(failed.errorCode ?? "-")")
            try await client.close()
            let refusedID = try #require(refused.header("Klarna-Gateway-Request-Id"))
            let failedID = try #require(failed.header("Klarna-Gateway-Request-Id"))

            let spans = try await receiver.waitFor { spans in
                spans.contains { $0.isCall(refusedID) }
                    && spans.contains { $0.isCall(failedID) }
                    && spans.contains { $0.name == CallTracing.Name.auditRefusal }
            }
            let promoted = try #require(spans.first { $0.isCall(failedID) })
            #expect(promoted.attributes["http.response.status_code"] == "503" && promoted.attributes["klarna.gateway.error_code"] == nil)
            #expect(promoted.statusCode == 2)
            let calls = spans.filter { $0.name == CallTracing.Name.call }
            let refusal = try #require(calls.first { $0.attributes["klarna.gateway.request_id"] == refusedID })
            Self.expectRefusal(refusal, code: "GATEWAY_FORBIDDEN", status: 403)
            #expect(spans.contains { $0.name == CallTracing.Name.auditRefusal && $0.parentSpanID == refusal.spanID })
            #expect(calls.contains { $0.traceID == Self.callerTrace && $0.parentSpanID == Self.callerSpan }, "the caller's sampled trace was not followed")
            #expect(!calls.contains { $0.attributes["klarna.gateway.request_id"] == unsampled.header("Klarna-Gateway-Request-Id") }, "an unsampled call was exported")
            // Unsampled, the call still carries a trace id: in its log line and as its correlation id.
            let line = gw.logs.text.split(separator: "\n").first { $0.contains("request_id=\(unsampled.header("Klarna-Gateway-Request-Id") ?? "-")") && $0.contains("phase=outcome") }
            #expect(line?.contains("trace_id=") == true && line?.contains("span_id=") == false, "\(line ?? "no access line")")
        }
        try await receiver.stop()
    }

    @Test("an HTTP/2 stream continues the caller's trace as an HTTP/1.1 call does: the server span and its stages, and Klarna gets no trace header")
    func http2() async throws {
        let receiver = try await OTLPReceiver()
        try await withGateway(tracing: Self.tracing(receiver)) { gw in
            try await gw.clearReceived()
            let result = try await ChildProcess.run("/usr/bin/curl", [
                "-sS", "--http2", "-o", "/dev/null", "-D", "-", "-w", "%{http_version} %{http_code}",
                "--cacert", gw.directory.appendingPathComponent("callers-ca.pem").path,
                "-H", "Authorization: Bearer \(gw.tokens["checkout"]!)", "-H", "traceparent: 00-\(Self.callerTrace)-\(Self.callerSpan)-01",
                "https://localhost:\(gw.httpsPort)" + Self.transaction,
            ], directory: gw.directory)
            #expect(result.stdout.hasSuffix("2 200"), "curl said: \(result.stdout) \(result.stderr)")
            let requestID = try #require(
                result.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("klarna-gateway-request-id:") }?
                    .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces))
            // The call span ends after its audit outcome span, once the stream closes, and may go in a later export.
            let spans = try await receiver.waitFor { spans in
                spans.contains { $0.name == CallTracing.Name.auditOutcome && $0.traceID == Self.callerTrace }
                    && spans.contains { $0.name == CallTracing.Name.call && $0.traceID == Self.callerTrace }
            }
            let call = try #require(spans.first { $0.name == CallTracing.Name.call && $0.traceID == Self.callerTrace }, "\(spans.map(\.name))")
            #expect(call.parentSpanID == Self.callerSpan)
            #expect(call.attributes["klarna.gateway.request_id"] == requestID)
            #expect(call.attributes["http.response.status_code"] == "200")
            let children = spans.filter { $0.parentSpanID == call.spanID }
            for name in [CallTracing.Name.rateLimit, CallTracing.Name.auditIntent, CallTracing.Name.attempt, CallTracing.Name.auditOutcome] {
                #expect(children.filter { $0.name == name }.count == 1, "\(name) under the call span: \(children.map(\.name))")
            }
            let received = try await gw.received()
            #expect(received.count == 1)
            #expect(received.first?["headers"]?["traceparent"] == nil || received.first?["headers"]?["traceparent"] == .null, "Klarna received a traceparent")
            #expect(received.first?["headers"]?["Partner-Correlation-Id"]?.stringValue == Self.callerTrace)
        }
        try await receiver.stop()
    }

    @Test("a call the rate limit refuses gets its span with GATEWAY_RATE_LIMITED, and its rate-limit span names the rule that refused it")
    func rateLimitRefusal() async throws {
        let receiver = try await OTLPReceiver()
        let refusing = """
            merchant:
              test:
                default: {rate: 0.01, burst: 1}
            """
        try await withGateway(rateLimits: refusing, tracing: Self.tracing(receiver)) { gw in
            let client = gw.client()
            let admitted = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            let refused = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            try await client.close()
            #expect(admitted.status == 200)
            #expect(refused.status == 429 && refused.errorCode == "GATEWAY_RATE_LIMITED")
            let (call, spans) = try await Self.callSpan(try #require(refused.header("Klarna-Gateway-Request-Id")), from: receiver)
            Self.expectRefusal(call, code: "GATEWAY_RATE_LIMITED", status: 429)
            let limit = try #require(spans.first { $0.name == CallTracing.Name.rateLimit && $0.parentSpanID == call.spanID }, "\(spans.map(\.name))")
            #expect(limit.attributes["klarna.gateway.rate_limit.rule"]?.isEmpty == false, "\(limit.attributes)")
            #expect(limit.statusCode == 2)
            #expect(!spans.contains { $0.name == CallTracing.Name.attempt && $0.parentSpanID == call.spanID }, "a refused call made an upstream attempt")
        }
        try await receiver.stop()
    }

    @Test("a call refused because the gateway is full gets its span with GATEWAY_OVERLOADED and no upstream attempt")
    func overloadRefusal() async throws {
        let receiver = try await OTLPReceiver()
        try await withGateway(limits: "max_in_flight_requests: 1", tracing: Self.tracing(receiver)) { gw in
            // Three writes at once, each held a second by Klarna: one takes the only place, the others are refused.
            try await gw.inject(#"{"kind": "latency", "method": "POST", "delay_ms": 1000}"#)
            var refused: TestHTTPResponse?
            // Again if a starved machine started them too far apart to overlap; nothing else may answer.
            for _ in 0..<5 where refused == nil {
                let answers = try await withThrowingTaskGroup(of: TestHTTPResponse.self) { group in
                    for index in 0..<3 {
                        group.addTask {
                            let client = gw.client()
                            let write = FaultSuiteTests.post(gw, "overload-\(UUID().uuidString)-\(index)")
                            let answer = try await client.send(write.0, write.1, headers: write.2, body: write.3)
                            try await client.close()
                            return answer
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(answers.allSatisfy { $0.status == 201 || $0.errorCode == "GATEWAY_OVERLOADED" }, "\(answers.map { "\($0.status) \($0.errorCode ?? "-")" })")
                refused = answers.first { $0.errorCode == "GATEWAY_OVERLOADED" }
            }
            let overloaded = try #require(refused, "no call was refused as overloaded while another held the only place")
            #expect(overloaded.status == 503)
            let (call, spans) = try await Self.callSpan(try #require(overloaded.header("Klarna-Gateway-Request-Id")), from: receiver)
            Self.expectRefusal(call, code: "GATEWAY_OVERLOADED", status: 503)
            #expect(!spans.contains { $0.name == CallTracing.Name.attempt && $0.parentSpanID == call.spanID }, "an overloaded call made an upstream attempt")
        }
        try await receiver.stop()
    }

    @Test("a call Klarna fails twice shows three attempt spans, the first two with Klarna's 503, and its retry log lines carry its trace id; writes say whether their idempotency key was generated or the caller's")
    func retries() async throws {
        let receiver = try await OTLPReceiver()
        try await withGateway(tracing: Self.tracing(receiver)) { gw in
            try await gw.inject(#"{"kind": "error", "status": 503, "method": "GET", "count": 2}"#)
            let client = gw.client()
            let response = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            // Two writes: one the gateway adds an idempotency key to, one that brings its own.
            let keyless = FaultSuiteTests.post(gw, "traced-generated")
            let keyed = FaultSuiteTests.post(gw, "traced-own", key: "traced-own-key")
            let generated = try await client.send(keyless.0, keyless.1, headers: keyless.2, body: keyless.3)
            let own = try await client.send(keyed.0, keyed.1, headers: keyed.2, body: keyed.3)
            try await client.close()
            #expect(response.status == 200)
            #expect(generated.status == 201 && generated.header("Klarna-Gateway-Idempotency-Key") != nil)
            #expect(own.status == 201)
            let requestID = try #require(response.header("Klarna-Gateway-Request-Id"))
            let writeIDs = [try #require(generated.header("Klarna-Gateway-Request-Id")), try #require(own.header("Klarna-Gateway-Request-Id"))]
            let spans = try await receiver.waitFor { spans in
                ([requestID] + writeIDs).allSatisfy { id in spans.contains { $0.isCall(id) } }
            }
            let call = try #require(spans.first { $0.isCall(requestID) })
            let keys = writeIDs.map { id in spans.first { $0.isCall(id) }?.attributes["klarna.idempotency_key"] }
            #expect(keys == ["generated", "caller"])
            // The log lines about the retries name the call's trace, as its access line does.
            let retried = gw.logs.text.split(separator: "\n").filter { $0.contains("retrying upstream call") && $0.contains("request_id=\(requestID)") }
            #expect(retried.count == 2 && retried.allSatisfy { $0.contains("trace_id=\(call.traceID)") }, "\(retried)")
            #expect(call.attributes["klarna.gateway.upstream_attempts"] == "3")
            let attempts = spans.filter { $0.name == CallTracing.Name.attempt && $0.parentSpanID == call.spanID }
                .sorted { ($0.attributes["klarna.gateway.attempt"] ?? "") < ($1.attributes["klarna.gateway.attempt"] ?? "") }
            #expect(attempts.map { $0.attributes["klarna.gateway.attempt"] ?? "?" } == ["1", "2", "3"])
            #expect(attempts.map { $0.attributes["http.response.status_code"] ?? "?" } == ["503", "503", "200"])
            #expect(attempts.prefix(2).allSatisfy { $0.statusCode == 2 })
        }
        try await receiver.stop()
    }

    /// The value of one series in a Prometheus exposition (0 when absent: the series exist from the start at 0,
    /// and what a test checks is that they rise).
    static func value(_ series: String, in exposition: String) -> Double {
        exposition.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// The value of one series in `registry`'s exposition.
    static func value(_ series: String, in registry: PrometheusCollectorRegistry) -> Double {
        value(series, in: registry.emitToString())
    }

    /// Makes ten calls through `gw`, each answered, then waits (up to 30 s) for `series` to rise above 0.
    static func callsThenWait(for series: String, gw: GatewayHarness, registry: PrometheusCollectorRegistry) async throws {
        let client = gw.client()
        for _ in 0..<10 {
            let response = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            #expect(response.status == 200)
        }
        try await client.close()
        let deadline = ContinuousClock.now + .seconds(30)
        while value(series, in: registry) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test("a full span queue drops spans, counts them as queue_full, and costs no call; spans still queued at a graceful stop are exported")
    func queueFullAndShutdownFlush() async throws {
        let receiver = try await OTLPReceiver()
        let registry = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
        // Two spans fit; the timer never fires during the test, so only a full queue or the stop sends anything.
        try await withGateway(
            tracing: "enabled: true, endpoint: \"\(receiver.endpoint)\", queue_size: 2, batch_size: 2, export_interval_ms: 600000", metrics: metrics
        ) { gw in
            let dropped = "kgw_trace_spans_dropped_total{reason=\"queue_full\"}"
            try await Self.callsThenWait(for: dropped, gw: gw, registry: registry)
            // Six spans a call, two places: most of the sixty were dropped.
            #expect(Self.value(dropped, in: registry) >= 1, "no dropped span counted:\n\(registry.emitToString())")
        }
        // Stopped; then one more call on a fresh gateway whose spans sit in the queue until its stop flushes them.
        let flushing = try await GatewayHarness.start(
            tracing: "enabled: true, endpoint: \"\(receiver.endpoint)\", export_interval_ms: 600000")
        let client = flushing.client()
        let response = try await client.send("GET", Self.transaction, headers: [flushing.bearer("checkout")])
        try await client.close()
        #expect(response.status == 200)
        let requestID = try #require(response.header("Klarna-Gateway-Request-Id"))
        #expect(!receiver.received.contains { $0.attributes["klarna.gateway.request_id"] == requestID }, "exported before the stop")
        await flushing.stop()
        let spans = try await receiver.waitFor { spans in spans.contains { $0.attributes["klarna.gateway.request_id"] == requestID } }
        #expect(spans.contains { $0.isCall(requestID) }, "the queued spans were not flushed at the stop")
        try await receiver.stop()
    }

    @Test("a collector that is not there costs no call: every call is answered, and the lost exports are counted in /metrics")
    func deadCollector() async throws {
        let port = try await FaultGateway.freePort()
        let registry = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
        try await withGateway(
            tracing: "enabled: true, endpoint: \"http://127.0.0.1:\(port)/v1/traces\", export_interval_ms: 100, export_timeout_ms: 500", metrics: metrics
        ) { gw in
            let lost = "kgw_trace_spans_dropped_total{reason=\"export_failed\"}"
            try await Self.callsThenWait(for: lost, gw: gw, registry: registry)
            #expect(Self.value("kgw_trace_exports_failed_total", in: registry) >= 1, "no failed export counted:\n\(registry.emitToString())")
            #expect(Self.value(lost, in: registry) >= 1, "no lost span counted")
        }
    }

    @Test("a collector that answers Connection: close gets every export on a new connection; one that ends a kept connection as an export goes out gets that export again on a new one; none fails or loses a span", arguments: [OTLPReceiver.Manner.announcesClose, .dropsSecondRequest])
    func collectorEndingConnections(_ manner: OTLPReceiver.Manner) async throws {
        let receiver = try await OTLPReceiver(manner: manner)
        let registry = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
        // A few spans a request, so the calls below make several exports.
        try await withGateway(
            tracing: "enabled: true, endpoint: \"\(receiver.endpoint)\", batch_size: 4, export_interval_ms: 100", metrics: metrics
        ) { gw in
            let client = gw.client()
            for _ in 0..<8 {
                let response = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
                #expect(response.status == 200)
                try await Task.sleep(for: .milliseconds(30))
            }
            try await client.close()
            let spans = try await receiver.waitFor { spans in spans.filter { $0.name == CallTracing.Name.call }.count >= 8 }
            #expect(spans.filter { $0.name == CallTracing.Name.call }.count == 8, "a call's span was lost")
        }
        // Stopped, so every export has been answered and no connection is still being opened.
        let exports = receiver.receivedRequests.count
        #expect(exports >= 3, "too few exports to show anything: \(exports)")
        switch manner {
        case .announcesClose:
            #expect(receiver.connections == exports, "an export went out on a connection the collector said it would close")
        case .dropsSecondRequest, .keepAlive:
            // Each connection took one export and dropped the next, which went out again on a new connection.
            #expect(receiver.connections >= exports, "\(receiver.connections) connections for \(exports) exports")
        }
        #expect(Self.value("kgw_trace_exports_failed_total", in: registry) == 0, "an export failed:\n\(registry.emitToString())")
        try await receiver.stop()
    }

    @Test("a collector that takes an export and never answers: the export is abandoned at export_timeout_ms and counted, its connection closed and the next export made on a new one, and every call is answered meanwhile")
    func silentCollector() async throws {
        let listener = try await SilentListener()
        let registry = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
        try await withGateway(
            tracing: "enabled: true, endpoint: \"http://127.0.0.1:\(listener.port)/v1/traces\", export_interval_ms: 100, export_timeout_ms: 300",
            metrics: metrics
        ) { gw in
            let failed = "kgw_trace_exports_failed_total"
            try await Self.callsThenWait(for: failed, gw: gw, registry: registry)
            #expect(Self.value(failed, in: registry) >= 1, "no export abandoned:\n\(registry.emitToString())")
            // The abandoned export's connection cannot carry another: the next export opens a new one.
            let deadline = ContinuousClock.now + .seconds(30)
            let client = gw.client()
            while Self.value(failed, in: registry) < 2, ContinuousClock.now < deadline {
                let response = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
                #expect(response.status == 200)
                try await Task.sleep(for: .milliseconds(50))
            }
            try await client.close()
            #expect(Self.value(failed, in: registry) >= 2, "no second export abandoned")
            #expect(listener.bytesRead > 0, "no export was sent")
            #expect(listener.connections >= 2, "the second export reused the abandoned export's connection")
            #expect(Self.value("kgw_trace_spans_dropped_total{reason=\"export_failed\"}", in: registry) >= 2)
        }
        try await listener.stop()
    }

    @Test("with protocol http/json the exports are OTLP/JSON (Content-Type application/json, ids in hex): the call span in the caller's trace, the caller's span its parent, its stages its children, its attributes; a refusal's span carries its error status; OTEL_EXPORTER_OTLP_HEADERS comes from the environment the gateway was given")
    func json() async throws {
        let receiver = try await OTLPReceiver()
        // The in-process gateway takes the collector's headers from the environment it was given, not the test
        // process's.
        let environment = ["OTEL_EXPORTER_OTLP_HEADERS": "x-probe=in-process"]
        try await withGateway(tracing: Self.tracing(receiver) + ", protocol: http/json", environment: environment) { gw in
            let client = gw.client()
            let traced = try await client.send("GET", Self.transaction, headers: [
                gw.bearer("checkout"), ("traceparent", "00-\(Self.callerTrace)-\(Self.callerSpan)-01"), ("tracestate", "acme=7"),
            ])
            let refused = try await client.send("GET", "/v2/accounts/m3/payment/transactions/krn:payment:eu1:transaction:seed-M3", headers: [gw.bearer("checkout")])
            try await client.close()
            #expect(traced.status == 200)
            #expect(refused.errorCode == "GATEWAY_FORBIDDEN")
            let tracedID = try #require(traced.header("Klarna-Gateway-Request-Id"))
            let refusedID = try #require(refused.header("Klarna-Gateway-Request-Id"))
            let stages = [CallTracing.Name.rateLimit, CallTracing.Name.auditIntent, CallTracing.Name.attempt, CallTracing.Name.auditOutcome]
            let spans = try await receiver.waitFor { spans in
                guard let call = spans.first(where: { $0.isCall(tracedID) }) else { return false }
                let children = Set(spans.filter { $0.parentSpanID == call.spanID }.map(\.name))
                return stages.allSatisfy(children.contains) && spans.contains { $0.isCall(refusedID) }
            }

            // Every export was JSON, said so, and names the gateway's resource.
            let requests = receiver.receivedRequests
            #expect(!requests.isEmpty && requests.allSatisfy { $0.contentType == "application/json" }, "\(requests.map { $0.contentType ?? "no Content-Type" })")
            #expect(requests.allSatisfy { $0.header("x-probe") == ["in-process"] }, "\(requests.map { $0.header("x-probe") })")
            for request in requests {
                let root = try #require((try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any], "a body that is not a JSON object")
                let resource = ((root["resourceSpans"] as? [[String: Any]])?.first?["resource"] as? [String: Any])?["attributes"] as? [[String: Any]]
                let instance = resource?.first { $0["key"] as? String == "service.instance.id" }?["value"] as? [String: Any]
                #expect(instance?["stringValue"] as? String == "test-node", "\(resource ?? [])")
            }

            let call = try #require(spans.first { $0.isCall(tracedID) }, "\(spans.map(\.name))")
            #expect(call.traceID == Self.callerTrace)
            #expect(call.parentSpanID == Self.callerSpan)
            #expect(call.spanID.count == 16 && call.spanID.allSatisfy { "0123456789abcdef".contains($0) }, "span id \(call.spanID)")
            #expect(call.kind == 2, "a server span")
            #expect(call.traceState == "acme=7")
            #expect(call.attributes["klarna.gateway.caller"] == "checkout")
            #expect(call.attributes["klarna.operation.family"] == "payment-transaction")
            #expect(call.attributes["klarna.operation.id"]?.isEmpty == false)
            #expect(call.attributes["http.response.status_code"] == "200")
            #expect(call.attributes["klarna.gateway.upstream_attempts"] == "1")
            #expect(call.attributes["klarna.gateway.error_code"] == nil && call.statusCode != 2)
            let children = spans.filter { $0.parentSpanID == call.spanID }
            #expect(children.allSatisfy { $0.traceID == Self.callerTrace })
            for name in stages {
                #expect(children.filter { $0.name == name }.count == 1, "\(name) under the call span: \(children.map(\.name))")
            }
            let attempt = try #require(children.first { $0.name == CallTracing.Name.attempt })
            #expect(attempt.kind == 3, "a client span")
            #expect(attempt.events.contains("first byte"), "\(attempt.events)")

            let refusal = try #require(spans.first { $0.isCall(refusedID) })
            Self.expectRefusal(refusal, code: "GATEWAY_FORBIDDEN", status: 403)
        }
        try await receiver.stop()
    }

    /// The environment of a gateway process that exports to `receiver`: `tracing:` through `KGW_` overrides (the
    /// harness's own gateway, which shares the config file, does not trace) and the OpenTelemetry variables `otel`.
    static func exporting(to receiver: OTLPReceiver, _ otel: [String: String]) -> [String: String] {
        [
            "KGW_TRACING__ENABLED": "true", "KGW_TRACING__ENDPOINT": receiver.endpoint,
            "KGW_TRACING__EXPORT_INTERVAL_MS": "100", "KGW_TRACING__EXPORT_TIMEOUT_MS": "5000",
        ].merging(otel) { _, new in new }
    }

    /// Runs `body` against a served gateway; when it throws, records what the process wrote (its output files go
    /// with the harness's directory) and kills it.
    static func reporting(_ served: ServedGateway, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            Issue.record("the gateway process (running: \(served.child.process.isRunning)) wrote:\n\(served.child.stderr.suffix(3000))")
            served.child.kill(SIGKILL)
            throw error
        }
    }

    /// Makes `count` calls through `served`'s TLS listener, expecting each answered; returns their request ids.
    static func calls(_ count: Int, through served: ServedGateway, _ gw: GatewayHarness) async throws -> [String] {
        let client = TestHTTPClient(port: try #require(served.ports["https"]), tls: TestTLS(trustRootsPEM: gw.callerCA.caCertificatePEM))
        var ids: [String] = []
        for _ in 0..<count {
            let response = try await client.send("GET", Self.transaction, headers: [gw.bearer("checkout")])
            #expect(response.status == 200)
            ids.append(try #require(response.header("Klarna-Gateway-Request-Id")))
        }
        try await client.close()
        return ids
    }

    @Test("an https collector that requires a client certificate: the gateway process verifies it with OTEL_EXPORTER_OTLP_CERTIFICATE, presents OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _KEY, and sends OTEL_EXPORTER_OTLP_HEADERS percent-decoded, the collector's token in no log line and not in /metrics; with the system's roots instead, every export fails, every call is answered and /metrics counts the loss", .timeLimit(.minutes(3)))
    func mutualTLSCollector() async throws {
        let token = "s3cr3t-collector-token-PLANTED8e5d2a"
        let collectorCA = try TestPKI(name: "collector CA")
        let exportersCA = try TestPKI(name: "trace exporters CA")
        let exporter = try exportersCA.issueClient(commonName: "gateway-exporter")
        let receiver = try await OTLPReceiver(tls: try collectorCA.issueServer(), clientCAPEM: exportersCA.caCertificatePEM)
        try await withGateway { gw in
            let caFile = gw.directory.appendingPathComponent("collector-ca.pem")
            try collectorCA.caCertificatePEM.write(to: caFile, atomically: true, encoding: .utf8)
            let identity = try exportersCA.write(exporter, to: gw.directory, name: "exporter")
            var environment = Self.exporting(to: receiver, [
                "OTEL_EXPORTER_OTLP_CERTIFICATE": caFile.path,
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": identity.certificate.path,
                "OTEL_EXPORTER_OTLP_CLIENT_KEY": identity.key.path,
                // A space and a comma, percent-encoded: decoded after the list is split at its commas.
                "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20\(token),x-tenant=acq%2Ceu",
            ])
            #expect(receiver.endpoint.hasPrefix("https://"))

            let served = try await ServedGateway.start(gw, environment: environment)
            try await Self.reporting(served) {
                let ids = try await Self.calls(2, through: served, gw)
                let spans = try await receiver.waitFor { spans in ids.allSatisfy { id in spans.contains { $0.isCall(id) } } }
                #expect(ids.allSatisfy { id in spans.contains { $0.isCall(id) } }, "the calls' spans did not reach the collector")
                let requests = receiver.receivedRequests
                #expect(!requests.isEmpty)
                for request in requests {
                    #expect(request.header("authorization") == ["Bearer \(token)"], "the collector's token, percent-decoded")
                    #expect(request.header("x-tenant") == ["acq,eu"])
                    #expect(request.clientCertificate == exporter.fingerprint, "not the configured client certificate")
                }
                let metrics = try await served.metrics()
                #expect(Self.value("kgw_trace_exports_failed_total", in: metrics) == 0, "\(metrics)")
                let tokenInMetrics = metrics.contains(token)
                #expect(!tokenInMetrics, "the collector's token is in /metrics")
                #expect(try await served.stop() == 0)
            }
            let logged = served.child.stdout + served.child.stderr
            let (searched, leaked) = (logged.contains("klarna-gateway serving"), logged.contains(token))
            #expect(searched, "no output to search")
            #expect(!leaked, "the collector's token is in the gateway's log output")

            // The same, trusting the system's roots, which never signed the collector's certificate.
            let delivered = receiver.receivedRequests.count
            environment["OTEL_EXPORTER_OTLP_CERTIFICATE"] = nil
            let unverified = try await ServedGateway.start(gw, environment: environment)
            try await Self.reporting(unverified) {
                _ = try await Self.calls(10, through: unverified, gw)
                let lost = "kgw_trace_spans_dropped_total{reason=\"export_failed\"}"
                var metrics = try await unverified.metrics()
                let deadline = ContinuousClock.now + .seconds(30)
                while Self.value(lost, in: metrics) == 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                    metrics = try await unverified.metrics()
                }
                #expect(Self.value("kgw_trace_exports_failed_total", in: metrics) >= 1, "no failed export counted:\n\(metrics)")
                #expect(Self.value(lost, in: metrics) >= 1, "no lost span counted")
                let tokenInMetrics = metrics.contains(token)
                #expect(!tokenInMetrics, "the collector's token is in /metrics")
                #expect(receiver.receivedRequests.count == delivered, "an export reached the collector it could not have verified")
                #expect(try await unverified.stop() == 0)
            }
            let failing = unverified.child.stdout + unverified.child.stderr
            // Failed because the collector's certificate was not verified, not for anything else.
            let warned = failing.split(separator: "\n").contains { $0.contains("tracing export: failed to export batch") && $0.contains("CERTIFICATE_VERIFY_FAILED") }
            let leakedOnFailure = failing.contains(token)
            #expect(warned, "no warning about exports failing the collector's certificate\(failing.split(separator: "\n").filter { $0.contains("tracing export") }.prefix(3))")
            #expect(!leakedOnFailure, "the collector's token is in the gateway's log output")
        }
        try await receiver.stop()
    }
}

extension OTLPReceiver.Span {
    /// Whether this is the gateway's server span of the call with `requestID`.
    func isCall(_ requestID: String?) -> Bool {
        name == CallTracing.Name.call && attributes["klarna.gateway.request_id"] == requestID
    }
}

/// A TCP listener that reads whatever it is sent and never answers: a collector that hangs.
final class SilentListener: Sendable {
    private let channel: any Channel
    private let counts: Counts

    private final class Counts: Sendable {
        let connections = Atomic<Int>(0)
        let bytes = Atomic<Int>(0)
    }

    private final class Swallow: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let counts: Counts
        init(counts: Counts) { self.counts = counts }
        func channelActive(context: ChannelHandlerContext) { counts.connections.add(1, ordering: .relaxed) }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            counts.bytes.add(unwrapInboundIn(data).readableBytes, ordering: .relaxed)
        }
    }

    /// Connections accepted so far.
    var connections: Int { counts.connections.load(ordering: .relaxed) }
    /// Bytes read so far, over every connection.
    var bytesRead: Int { counts.bytes.load(ordering: .relaxed) }
    var port: Int { channel.localAddress?.port ?? 0 }

    init() async throws {
        let counts = Counts()
        self.counts = counts
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Swallow(counts: counts)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async throws { try await channel.close() }
}
