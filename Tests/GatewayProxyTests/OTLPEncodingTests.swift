import Foundation
import GatewayCore
@testable import GatewayProxy
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// The hand-written OTLP encoding and the per-thread span buffers, decoded with the test receiver's own reader
/// of the protobuf wire format (written apart from the encoder, so one cannot hide the other's mistake).
@Suite("OTLP encoding and span hand-over")
struct OTLPEncodingTests {
    static let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parentSpan = "00f067aa0ba902b7"
    static let request = OTLPExportRequest(serviceName: "kgw-test", instanceID: "node-7")

    static func tracing(_ sampling: TraceSampling = TraceSampling(), capacity: Int = 64, batchSize: Int = 64) -> CallTracing {
        CallTracing(sampling: sampling, spans: SpanQueue(capacity: capacity, batchSize: batchSize) {})
    }

    static func record(status: Int?, errorCode: String? = nil) -> CallRecord {
        var record = CallRecord(phase: .outcome, requestID: "req-1", timeMicros: 0, method: "GET", path: "/v2/x")
        record.facts.callerID = "checkout"
        record.facts.merchantID = "m1"
        record.facts.environment = .test
        record.facts.release = "r7"
        record.status = status
        record.gatewayErrorCode = errorCode
        record.upstreamAttempts = 2
        record.correlationID = Self.trace
        return record
    }

    /// One call through every stage: a shaped rate limit, the intent, a failed and an answered attempt, the outcome.
    static func tracedCall(_ tracing: CallTracing, longValue: String = "r7") -> CallTrace {
        var trace = CallTrace(tracing, headers: ["traceparent": "00-\(Self.trace)-\(Self.parentSpan)-01", "tracestate": "acme=7"])
        trace.rateLimitStarted()
        trace.rateLimitShaped(wait: 1_500_000_000)
        trace.rateLimitEnded()
        trace.journalStarted(CallTracing.Name.auditIntent)
        trace.journalEnded(recorded: true)
        trace.attemptStarted(number: 1, host: "api.klarna.test")
        trace.attemptEvent(.tcpConnected)
        trace.attemptEvent(.tlsDone)
        trace.attemptEvent(.firstByte)
        trace.attemptEnded(status: 503)
        trace.attemptStarted(number: 2, host: "api.klarna.test")
        trace.attemptEvent(.reused)
        trace.attemptEvent(.firstByte)
        trace.attemptEnded(status: 200)
        trace.journalStarted(CallTracing.Name.auditOutcome)
        var record = record(status: 200)
        record.facts.release = longValue
        trace.finish(record: record, generatedKey: false)
        return trace
    }

    static func exported(_ tracing: CallTracing) -> [OTLPReceiver.Span] {
        OTLPReceiver.decode(Array(buffer: request.protobuf(tracing.spans.take().runs)))
    }

    @Test("a traced call's spans decode with their ids, parents, names, kinds, attributes, events and statuses")
    func callSpans() throws {
        let tracing = Self.tracing()
        let trace = Self.tracedCall(tracing)
        let spans = Self.exported(tracing)
        #expect(spans.map(\.name) == [
            CallTracing.Name.rateLimit, CallTracing.Name.auditIntent, CallTracing.Name.attempt, CallTracing.Name.attempt,
            CallTracing.Name.auditOutcome, CallTracing.Name.call,
        ])
        let call = try #require(spans.last)
        #expect(call.traceID == Self.trace && call.parentSpanID == Self.parentSpan && call.traceState == "acme=7")
        #expect(call.kind == 2 && call.statusCode == 0)
        #expect(call.spanID == trace.identity?.spanIDHex && call.spanID.count == 16)
        #expect(call.attributes == [
            "http.request.method": "GET", "klarna.gateway.request_id": "req-1", "klarna.gateway.caller": "checkout",
            "klarna.merchant.id": "m1", "klarna.environment": "test", "klarna.release": "r7", "http.response.status_code": "200",
            "klarna.gateway.correlation_id": Self.trace, "klarna.gateway.upstream_attempts": "2", "klarna.idempotency_key": "none",
        ])
        for child in spans.dropLast() {
            #expect(child.traceID == Self.trace && child.parentSpanID == call.spanID && child.traceState.isEmpty)
            #expect(child.spanID != call.spanID && child.spanID.count == 16)
        }
        #expect(Set(spans.map(\.spanID)).count == spans.count, "span ids repeat")
        let limit = spans[0]
        #expect(limit.kind == 1 && limit.events == ["shaping wait"] && limit.attributes["klarna.gateway.rate_limit.shaped"] == "true")
        let (first, second) = (spans[2], spans[3])
        #expect(first.kind == 3 && second.kind == 3)
        #expect(first.attributes["klarna.gateway.attempt"] == "1" && second.attributes["klarna.gateway.attempt"] == "2")
        #expect(first.attributes["server.address"] == "api.klarna.test")
        #expect(first.attributes["http.response.status_code"] == "503" && first.statusCode == 2)
        #expect(second.attributes["http.response.status_code"] == "200" && second.statusCode == 0)
        #expect(first.events == ["tcp connected", "tls handshake done", "first byte"])
        #expect(second.events == ["connection reused", "first byte"])
    }

    @Test("times are the wall clock's nanoseconds, each span ending after it starts, and events carry their attributes")
    func timesAndEventAttributes() throws {
        let before = UInt64(Date().timeIntervalSince1970 * 1e9) - 1_000_000_000
        let tracing = Self.tracing()
        _ = Self.tracedCall(tracing)
        let body = Array(buffer: Self.request.protobuf(tracing.spans.take().runs))
        // Resource → scope spans → spans, read field by field here rather than through the receiver's `Span`.
        var starts: [UInt64] = []
        var waits: [String] = []
        for (field, resource) in OTLPReceiver.Wire.fields(body[...]) where field == 1 {
            for (field, scope) in OTLPReceiver.Wire.fields(resource.bytes) where field == 2 {
                for (field, span) in OTLPReceiver.Wire.fields(scope.bytes) where field == 2 {
                    let fields = OTLPReceiver.Wire.fields(span.bytes)
                    let start = try #require(fields.first { $0.0 == 7 }?.1.number)
                    let end = try #require(fields.first { $0.0 == 8 }?.1.number)
                    #expect(end >= start && start > before, "start \(start) end \(end)")
                    starts.append(start)
                    for (field, event) in fields where field == 11 {
                        for (field, attribute) in OTLPReceiver.Wire.fields(event.bytes) where field == 3 {
                            let parts = OTLPReceiver.Wire.fields(attribute.bytes)
                            let value = OTLPReceiver.Wire.fields(parts.first { $0.0 == 2 }!.1.bytes)
                            waits.append("\(parts.first { $0.0 == 1 }!.1.text)=\(Int64(bitPattern: value.first!.1.number))")
                        }
                    }
                }
            }
        }
        #expect(starts.count == 6)
        #expect(waits == ["klarna.gateway.rate_limit.wait_ms=1500"])
    }

    @Test("the resource names the service and the node; long values take multi-byte lengths")
    func resourceAndLengths() throws {
        let tracing = Self.tracing()
        let long = String(repeating: "r", count: 20_000)
        _ = Self.tracedCall(tracing, longValue: long)
        let body = Array(buffer: Self.request.protobuf(tracing.spans.take().runs))
        var resource: [String: String] = [:]
        for (field, resourceSpans) in OTLPReceiver.Wire.fields(body[...]) where field == 1 {
            for (field, part) in OTLPReceiver.Wire.fields(resourceSpans.bytes) where field == 1 {
                for (field, attribute) in OTLPReceiver.Wire.fields(part.bytes) where field == 1 {
                    let parts = OTLPReceiver.Wire.fields(attribute.bytes)
                    resource[parts.first { $0.0 == 1 }!.1.text] = OTLPReceiver.Wire.fields(parts.first { $0.0 == 2 }!.1.bytes).first?.1.text
                }
            }
        }
        #expect(resource == ["service.name": "kgw-test", "service.instance.id": "node-7"])
        let spans = OTLPReceiver.decode(body)
        #expect(spans.count == 6)
        #expect(spans.last?.attributes["klarna.release"] == long)
        #expect(spans.last?.attributes["klarna.merchant.id"] == "m1", "the field after the long one was lost")
    }

    @Test("varint sizes agree with the bytes written, at every length boundary")
    func varints() {
        for value: UInt64 in [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, UInt64(UInt32.max), UInt64.max] {
            var bytes: [UInt8] = []
            bytes.protoVarint(value)
            #expect(bytes.count == OTLPWire.varintSize(value), "\(value)")
            #expect(OTLPReceiver.Wire.fields(([0x08] + bytes)[...]).first?.1.number == value, "\(value)")
        }
        // A message's length goes in front of its body once the body is written: at each size boundary the body
        // moves up by the length's size, and the bytes before the message stay where they were.
        for bodyLength in [0, 1, 126, 127, 128, 129, 16_383, 16_384, 2_097_152] {
            var bytes: [UInt8] = [0x0A, 0x01, 0x7F]
            let body = (0..<bodyLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            bytes.protoMessage(2) { $0.append(contentsOf: body) }
            let fields = OTLPReceiver.Wire.fields(bytes[...])
            #expect(fields.count == 2, "\(bodyLength)")
            #expect(fields.first.map { ($0.0, Array($0.1.bytes)) }! == (1, [0x7F]), "\(bodyLength)")
            #expect(fields.last.map { ($0.0, Array($0.1.bytes)) }! == (2, body), "\(bodyLength)")
            #expect(bytes.count == 3 + 1 + OTLPWire.varintSize(UInt64(bodyLength)) + bodyLength, "\(bodyLength)")
        }
        var negative: [UInt8] = []
        negative.protoAttribute("n", Int64(-5))
        let parts = OTLPReceiver.Wire.fields(OTLPReceiver.Wire.fields(negative[...]).first!.1.bytes)
        #expect(Int64(bitPattern: OTLPReceiver.Wire.fields(parts[1].1.bytes).first!.1.number) == -5)
    }

    @Test("OTLP/JSON carries the same spans: hex ids, integers as strings, events and status")
    func json() throws {
        let tracing = Self.tracing()
        _ = Self.tracedCall(tracing)
        let body = Self.request.json(OTLPExportRequest.spans(of: tracing.spans.take().runs))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let resourceSpans = try #require((object["resourceSpans"] as? [[String: Any]])?.first)
        let resource = try #require((resourceSpans["resource"] as? [String: Any])?["attributes"] as? [[String: Any]])
        #expect(resource.compactMap { $0["key"] as? String } == ["service.name", "service.instance.id"])
        let scope = try #require((resourceSpans["scopeSpans"] as? [[String: Any]])?.first)
        #expect((scope["scope"] as? [String: Any])?["name"] as? String == "klarna-gateway")
        let spans = try #require(scope["spans"] as? [[String: Any]])
        #expect(spans.count == 6)
        let call = try #require(spans.last)
        #expect(call["traceId"] as? String == Self.trace && call["parentSpanId"] as? String == Self.parentSpan)
        #expect(call["name"] as? String == CallTracing.Name.call && call["kind"] as? Int == 2 && call["traceState"] as? String == "acme=7")
        #expect((call["startTimeUnixNano"] as? String).flatMap(UInt64.init) != nil)
        let attributes = try #require(call["attributes"] as? [[String: Any]])
        let status = attributes.first { $0["key"] as? String == "http.response.status_code" }?["value"] as? [String: Any]
        #expect(status?["intValue"] as? String == "200")
        let merchant = attributes.first { $0["key"] as? String == "klarna.merchant.id" }?["value"] as? [String: Any]
        #expect(merchant?["stringValue"] as? String == "m1")
        let failed = spans[2]
        #expect(((failed["status"] as? [String: Any])?["code"] as? Int) == 2)
        #expect((failed["events"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["tcp connected", "tls handshake done", "first byte"])
        let limit = spans[0]
        let wait = ((limit["events"] as? [[String: Any]])?.first?["attributes"] as? [[String: Any]])?.first?["value"] as? [String: Any]
        #expect(wait?["intValue"] as? String == "1500")
    }

    @Test("an unsampled call makes no span but keeps its trace id; errors sampling makes its call span in that trace")
    func unsampledAndPromoted() throws {
        let tracing = Self.tracing(TraceSampling(ratio: 0, parentBased: true, errors: true))
        var unsampled = CallTrace(tracing, headers: [:])
        unsampled.rateLimitStarted()
        unsampled.rateLimitEnded()
        unsampled.finish(record: Self.record(status: 200), generatedKey: false)
        #expect(tracing.spans.take().count == 0)
        #expect(unsampled.identity?.spanID == 0 && unsampled.identity?.sampled == false)

        var refused = CallTrace(tracing, headers: [:])
        let traceID = try #require(refused.identity?.traceIDHex)
        refused.promoteIfError(tracing, record: Self.record(status: 200))
        #expect(!refused.hasOpenSpans, "a call that did not fail was promoted")
        refused.promoteIfError(tracing, record: Self.record(status: 403, errorCode: "GATEWAY_FORBIDDEN"))
        refused.journalStarted(CallTracing.Name.auditRefusal)
        refused.journalEnded(recorded: false)
        refused.finish(record: Self.record(status: 403, errorCode: "GATEWAY_FORBIDDEN"), generatedKey: true)
        let spans = Self.exported(tracing)
        #expect(spans.map(\.name) == [CallTracing.Name.auditRefusal, CallTracing.Name.call])
        #expect(spans.allSatisfy { $0.traceID == traceID })
        #expect(spans[0].statusCode == 2 && spans[0].statusMessage == "not recorded")
        #expect(spans[1].statusCode == 2 && spans[1].statusMessage == "GATEWAY_FORBIDDEN" && spans[1].parentSpanID.isEmpty)
        #expect(spans[1].attributes["klarna.idempotency_key"] == "generated")
    }

    @Test("each thread fills a buffer of its own; one take collects them all; a full queue drops and counts, and wakes the exporter")
    func handOver() async throws {
        let wakes = Wakes()
        let queue = SpanQueue(capacity: 10, batchSize: 4) { wakes.count.withLock { $0 += 1 } }
        let tracing = CallTracing(sampling: TraceSampling(), spans: queue)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        // Two calls on each loop: two buffers, six spans each side would pass the capacity, so one call a side.
        for loop in loops {
            try await loop.submit {
                var trace = CallTrace(tracing, headers: [:])
                trace.journalStarted(CallTracing.Name.auditIntent)
                trace.journalEnded(recorded: true)
                trace.finish(record: Self.record(status: 200), generatedKey: false)
            }.get()
        }
        #expect(queue.waiting == 4)
        #expect(wakes.count.withLock { $0 } == 1, "reaching batch_size wakes the exporter once")
        let taken = queue.take()
        #expect(taken.runs.count == 2 && taken.count == 4, "one part per loop's buffer")
        #expect(queue.waiting == 0 && queue.take().count == 0)
        let spans = OTLPReceiver.decode(Array(buffer: Self.request.protobuf(taken.runs)))
        #expect(spans.filter { $0.name == CallTracing.Name.call }.count == 2)

        // Past capacity: 12 spans offered, 10 kept, 2 dropped and counted, the first drop waking the exporter.
        let before = wakes.count.withLock { $0 }
        try await loops[0].submit {
            for _ in 0..<6 {
                var trace = CallTrace(tracing, headers: [:])
                trace.finish(record: Self.record(status: 200), generatedKey: false)
                var other = CallTrace(tracing, headers: [:])
                other.finish(record: Self.record(status: 200), generatedKey: false)
            }
        }.get()
        #expect(queue.waiting == 10)
        #expect(queue.takeDropped() == 2 && queue.takeDropped() == 0)
        #expect(wakes.count.withLock { $0 } == before + 2, "one wake at batch_size, one at the first drop")
        let kept = queue.take()
        #expect(kept.count == 10 && OTLPExportRequest.spans(of: kept.runs).count == 10)
        try await group.shutdownGracefully()
    }

    @Test("a batch is cut at batch_size spans without splitting one")
    func spansOfTaken() {
        let tracing = Self.tracing()
        for _ in 0..<3 { _ = Self.tracedCall(tracing) }
        let spans = OTLPExportRequest.spans(of: tracing.spans.take().runs)
        #expect(spans.count == 18)
        let halves = [spans[0..<7], spans[7...]]
        let decoded = halves.map { half in
            OTLPReceiver.decode(Array(buffer: Self.request.protobuf([OTLPExportRequest.SpanRun(bytes: ArraySlice(half.joined()), count: half.count)])))
        }
        #expect(decoded.map(\.count) == [7, 11])
        #expect(decoded.joined().filter { $0.name == CallTracing.Name.call }.count == 3)
    }

    @Test("the exporter's batches: whole buffers regrouped into batch_size spans, cut only between spans, each request decoding to its spans in order")
    func batchesOfRuns() throws {
        let tracing = Self.tracing()
        for _ in 0..<3 { _ = Self.tracedCall(tracing) }
        let taken = tracing.spans.take()
        let all = OTLPReceiver.decode(Array(buffer: Self.request.protobuf(taken.runs)))
        #expect(all.count == 18)
        // One buffer, then the same bytes as two buffers of 5 and 13 spans (two event loops' parts).
        let whole = try #require(taken.runs.first)
        let cut = OTLPExportRequest.prefixEnd(of: whole.bytes, spans: 5)
        let split = [
            OTLPExportRequest.SpanRun(bytes: whole.bytes[..<cut], count: 5),
            OTLPExportRequest.SpanRun(bytes: whole.bytes[cut...], count: 13),
        ]
        for (runs, size, expected) in [(taken.runs, 7, [7, 7, 4]), (split, 4, [4, 4, 4, 4, 2]), (split, 18, [18]), (split, 64, [18])] {
            let batches = OTLPExportRequest.batches(runs, size: size)
            #expect(batches.map { $0.reduce(0) { $0 + $1.count } } == expected, "size \(size)")
            var decoded: [OTLPReceiver.Span] = []
            for batch in batches {
                let body = Self.request.protobuf(batch)
                let spans = OTLPReceiver.decode(Array(body.readableBytesView))
                #expect(spans.count == batch.reduce(0) { $0 + $1.count }, "size \(size)")
                decoded += spans
                // Each request carries the resource, not only the first.
                for (field, resourceSpans) in OTLPReceiver.Wire.fields(Array(body.readableBytesView)[...]) where field == 1 {
                    let resource = OTLPReceiver.Wire.fields(resourceSpans.bytes).filter { $0.0 == 1 }
                    #expect(resource.count == 1 && OTLPReceiver.Wire.fields(resource[0].1.bytes).count == 2)
                }
            }
            #expect(decoded.map(\.spanID) == all.map(\.spanID), "size \(size): spans lost, repeated or reordered")
            #expect(decoded.map(\.attributes) == all.map(\.attributes), "size \(size)")
        }
        #expect(OTLPExportRequest.batches([], size: 4).isEmpty)
    }

    @Test("an operation's attributes, encoded once and kept with the operation, decode as its id, family and category on every call")
    func operationAttributes() throws {
        let tracing = Self.tracing()
        let operation = Operation(
            id: "capturePaymentTransaction", method: "POST", template: "/v2/payment/transactions/{id}/captures",
            scope: .direct, family: "payment-transaction", category: "payment-transaction-capture", introducedIn: "r1", testOnly: false)
        for _ in 0..<2 {
            var trace = CallTrace(tracing, headers: [:])
            var record = Self.record(status: 200)
            record.facts.operation = operation
            trace.finish(record: record, generatedKey: false)
        }
        let first = operation.cachedBytes { _ in [] }
        #expect(first.baseAddress == operation.cachedBytes { _ in [1] }.baseAddress && first.count > 0, "made again")
        let calls = Self.exported(tracing)
        #expect(calls.count == 2)
        for call in calls {
            #expect(call.attributes["klarna.operation.id"] == "capturePaymentTransaction")
            #expect(call.attributes["klarna.operation.family"] == "payment-transaction")
            #expect(call.attributes["klarna.rate_limit.category"] == "payment-transaction-capture")
            #expect(call.attributes["klarna.merchant.id"] == "m1" && call.attributes["klarna.release"] == "r7", "a neighbouring attribute was lost")
        }
    }
}

/// How often a queue asked for its exporter.
private final class Wakes: Sendable {
    let count = Mutex(0)
}
