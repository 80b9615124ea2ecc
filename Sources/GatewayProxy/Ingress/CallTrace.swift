import GatewayCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One call's spans, held in its `CallState` as a value: plain timestamps and ids of the spans still open, no span
/// object, no `ServiceContext`, no task. A span that ends is encoded at once, as its OTLP protobuf `Span`, into the
/// thread's `TraceBuffer` (uncontended lock), which the exporter takes off the event loops. With tracing off, or
/// for a call not sampled, it holds nothing and costs no allocation; every method is a no-op without the span it
/// would touch, so the handler calls them unconditionally at its existing steps.
struct CallTrace {
    /// The call's trace (nil with tracing off): the caller's trace, else a new one; its span id is the call span's
    /// once the call has one.
    var identity: TraceIdentity?
    /// The caller's span, from `traceparent`.
    var parent: TraceIdentity?
    /// The caller's `tracestate`, carried on the call span (sampled calls continuing a trace only).
    var traceState: String?
    /// When the head arrived (wall clock), the call span's start, also for a span made after the fact (`errors`).
    var startedNanos: UInt64 = 0
    /// Where the call's spans go once they end; nil while the call has no span.
    private var buffer: TraceBuffer?
    var rateLimit: RateLimitSpan?
    var journal: JournalSpan?
    var attempt: AttemptSpan?

    /// The rate-limit stage, while it lasts.
    struct RateLimitSpan {
        var start: UInt64
        /// When the limiter shaped the call, and how long it made it wait (ms).
        var shapedAt: UInt64 = 0
        var waitMs: Int64 = 0
    }

    /// A journal commit, while it lasts.
    struct JournalSpan {
        var name: String
        var start: UInt64
    }

    /// One upstream attempt, while it lasts, with the times of what happened in it (0: did not happen).
    struct AttemptSpan {
        var start: UInt64
        var number: Int
        var host: String
        var reused: UInt64 = 0
        var tcpConnected: UInt64 = 0
        var tlsDone: UInt64 = 0
        var firstByte: UInt64 = 0
    }

    /// What happens in an attempt, recorded as the attempt span's events (in this order).
    enum AttemptEvent {
        /// An idle pooled connection was taken.
        case reused
        /// A new connection's TCP connect completed.
        case tcpConnected
        /// Its TLS handshake completed.
        case tlsDone
        /// Klarna's response head arrived.
        case firstByte
    }

    /// No trace: tracing is off.
    init() {}

    /// With tracing on: reads the caller's trace context, decides sampling and, if sampled, opens the call's
    /// server span as a child of the caller's span.
    init(_ tracing: CallTracing?, headers: HTTPHeaders) {
        guard let tracing else { return }
        startedNanos = Self.now()
        parent = headers.first(name: "traceparent").flatMap { TraceIdentity(traceparent: $0) }
        var random = ThreadRandom()
        let trace = parent.map { TraceIdentity(traceHigh: $0.traceHigh, traceLow: $0.traceLow, spanID: 0, sampled: false) }
            ?? TraceIdentity.newTrace(using: &random)
        identity = trace
        // A new trace's own low half is the ratio's draw (as random as another draw, and one system call less).
        guard tracing.sampling.samples(parent: parent, random: trace.traceLow) else { return }
        // Only a traceparent the gateway can read is continued; `tracestate` travels with it, if it is well formed.
        if parent != nil, let state = headers.first(name: "tracestate"), Self.isValidTraceState(state) { traceState = state }
        openCall(tracing)
    }

    /// A call not sampled that turned out an error, with `errors` sampling: its server span is made now, starting
    /// when the call did, in the call's trace (the caller's, else the one whose id Klarna got as correlation id).
    mutating func promoteIfError(_ tracing: CallTracing?, record: CallRecord) {
        guard let tracing, buffer == nil, identity != nil, tracing.sampling.errors,
              TraceSampling.isError(status: record.status, gatewayErrorCode: record.gatewayErrorCode)
        else { return }
        openCall(tracing)
    }

    private mutating func openCall(_ tracing: CallTracing) {
        let buffer = tracing.spans.local()
        self.buffer = buffer
        identity?.spanID = buffer.nextID()
        identity?.sampled = true
    }

    /// Whether the call has a span (children are made only under it).
    private var hasCall: Bool { buffer != nil }

    /// Wall-clock nanoseconds since the epoch, as OTLP wants span times.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// A `tracestate` worth carrying on: at most 512 bytes of printable ASCII (W3C Trace Context's limit and
    /// character set); anything else is dropped rather than exported.
    static func isValidTraceState(_ value: String) -> Bool {
        value.utf8.count <= 512 && value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    // MARK: - Stages

    /// The rate-limit stage begins (once per call, however often the limiter is asked again).
    mutating func rateLimitStarted() {
        guard rateLimit == nil, hasCall else { return }
        rateLimit = RateLimitSpan(start: Self.now())
    }

    /// The limiter shapes the call: it waits `nanoseconds` before going on.
    mutating func rateLimitShaped(wait nanoseconds: Int64) {
        guard rateLimit != nil else { return }
        rateLimit?.shapedAt = Self.now()
        rateLimit?.waitMs = nanoseconds / 1_000_000
    }

    /// The stage ends: admitted, or refused by `rule`.
    mutating func rateLimitEnded(refusedBy rule: String? = nil) {
        guard let span = rateLimit.take() else { return }
        child(CallTracing.Name.rateLimit, kind: CallTracing.Kind.internal, start: span.start) { bytes in
            if span.shapedAt != 0 {
                bytes.protoAttribute("klarna.gateway.rate_limit.shaped", true)
                bytes.protoMessage(OTLPSpanField.events) { event in
                    event.protoFixed64(1, span.shapedAt)
                    event.protoString(2, "shaping wait")
                    event.protoAttribute("klarna.gateway.rate_limit.wait_ms", span.waitMs, field: 3)
                }
            }
            if let rule {
                bytes.protoAttribute("klarna.gateway.rate_limit.rule", rule)
                bytes.protoErrorStatus(rule)
            }
        }
    }

    /// A journal commit (intent, outcome or refusal record) begins.
    mutating func journalStarted(_ name: String) {
        if let open = journal.take() {
            child(open.name, kind: CallTracing.Kind.internal, start: open.start) { _ in }
        }
        guard hasCall else { return }
        journal = JournalSpan(name: name, start: Self.now())
    }

    /// The commit is done; `recorded` false when the journal failed it (the call then fails closed).
    mutating func journalEnded(recorded: Bool) {
        guard let span = journal.take() else { return }
        child(span.name, kind: CallTracing.Kind.internal, start: span.start) { bytes in
            if !recorded { bytes.protoErrorStatus("not recorded") }
        }
    }

    /// Upstream attempt `number` begins (connection taken or being opened).
    mutating func attemptStarted(number: Int, host: String) {
        attemptEnded(failure: "superseded")
        guard hasCall else { return }
        attempt = AttemptSpan(start: Self.now(), number: number, host: host)
    }

    /// Something happened in the attempt: a pooled connection reused, or a new one's TCP connect and TLS
    /// handshake; Klarna's first byte.
    mutating func attemptEvent(_ event: AttemptEvent) {
        guard attempt != nil else { return }
        let now = Self.now()
        switch event {
        case .reused: attempt?.reused = now
        case .tcpConnected: attempt?.tcpConnected = now
        case .tlsDone: attempt?.tlsDone = now
        case .firstByte: attempt?.firstByte = now
        }
    }

    /// The attempt is over: answered with `status`, or failed (`failure` names how).
    mutating func attemptEnded(status: Int? = nil, failure: String? = nil) {
        // Moved out, not copied, and handed to the encoder borrowed: a copy retained the host, a string of the
        // snapshot's that both event loops count references on.
        guard let span = attempt.take() else { return }
        child(CallTracing.Name.attempt, kind: CallTracing.Kind.client, start: span.start, span) { bytes, span in
            bytes.protoAttribute("klarna.gateway.attempt", Int64(span.number))
            bytes.protoAttribute("server.address", span.host)
            bytes.protoEvent("connection reused", at: span.reused)
            bytes.protoEvent("tcp connected", at: span.tcpConnected)
            bytes.protoEvent("tls handshake done", at: span.tlsDone)
            bytes.protoEvent("first byte", at: span.firstByte)
            if let status { bytes.protoAttribute("http.response.status_code", Int64(status)) }
            if let failure {
                bytes.protoAttribute("error.type", failure)
                bytes.protoErrorStatus(failure)
            } else if let status, status >= 500 {
                bytes.protoErrorStatus(nil)
            }
        }
    }

    /// Whether any of the call's spans is still open: only then has `finish` anything to do.
    var hasOpenSpans: Bool { buffer != nil }

    /// The call is over: every span still open ends, and the call's span takes the record's attributes.
    mutating func finish(record: CallRecord, generatedKey: Bool) {
        rateLimitEnded()
        journalEnded(recorded: true)
        attemptEnded(failure: record.status == nil ? "call ended" : nil)
        guard let identity, let buffer = buffer.take() else { return }
        let end = Self.now()
        let (start, parent, traceState) = (startedNanos, parent, traceState)
        buffer.append(record) { bytes, _, record in
            bytes.protoSpanHead(
                identity, spanID: identity.spanID, parent: parent?.spanID, traceState: traceState, name: CallTracing.Name.call,
                kind: CallTracing.Kind.server, start: start, end: end)
            bytes.protoAttribute("http.request.method", record.method)
            bytes.protoAttribute("klarna.gateway.request_id", record.requestID)
            if let caller = record.facts.callerID { bytes.protoAttribute("klarna.gateway.caller", caller) }
            if let merchant = record.facts.merchantID { bytes.protoAttribute("klarna.merchant.id", merchant) }
            if let attributes = record.facts.operation?.cachedBytes(Self.operationAttributes) {
                bytes.append(contentsOf: attributes.assumingMemoryBound(to: UInt8.self))
            }
            if let release = record.facts.release { bytes.protoAttribute("klarna.release", release) }
            if let environment = record.facts.environment { bytes.protoAttribute("klarna.environment", environment.rawValue) }
            if let status = record.status { bytes.protoAttribute("http.response.status_code", Int64(status)) }
            if let code = record.gatewayErrorCode { bytes.protoAttribute("klarna.gateway.error_code", code) }
            if let code = record.klarnaErrorCode { bytes.protoAttribute("klarna.error_code", code) }
            if let rule = record.rateLimitRule { bytes.protoAttribute("klarna.gateway.rate_limit.rule", rule) }
            if let correlation = record.correlationID { bytes.protoAttribute("klarna.gateway.correlation_id", correlation) }
            bytes.protoAttribute("klarna.gateway.upstream_attempts", Int64(record.upstreamAttempts))
            bytes.protoAttribute("klarna.idempotency_key", generatedKey ? "generated" : record.idempotencyKey == nil ? "none" : "caller")
            if let code = record.gatewayErrorCode {
                bytes.protoErrorStatus(code)
            } else if (record.status ?? 0) >= 500 {
                bytes.protoErrorStatus(nil)
            }
        }
    }

    /// The call span's attributes that depend on its operation alone, encoded once per operation
    /// (`Operation.cachedBytes`).
    static func operationAttributes(_ operation: Operation) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.protoAttribute("klarna.operation.id", operation.id)
        bytes.protoAttribute("klarna.operation.family", operation.family)
        bytes.protoAttribute("klarna.rate_limit.category", operation.category)
        return bytes
    }

    /// Encodes a child span of the call's span that started at `start` and ends now; `body` adds its attributes,
    /// events and status.
    private func child(_ name: String, kind: UInt64, start: UInt64, _ body: (inout [UInt8]) -> Void) {
        child(name, kind: kind, start: start, ()) { bytes, _ in body(&bytes) }
    }

    /// `child` with `context` handed to `body` borrowed (see `TraceBuffer.append(_:_:)`).
    private func child<Context>(
        _ name: String, kind: UInt64, start: UInt64, _ context: borrowing Context, _ body: (inout [UInt8], borrowing Context) -> Void
    ) {
        guard let buffer, let identity else { return }
        let end = Self.now()
        buffer.append(context) { bytes, id, context in
            bytes.protoSpanHead(identity, spanID: id, parent: identity.spanID, traceState: nil, name: name, kind: kind, start: start, end: end)
            body(&bytes, context)
        }
    }
}

extension Array where Element == UInt8 {
    /// A `Span`'s ids, name, kind and times, written at once.
    mutating func protoSpanHead(
        _ trace: TraceIdentity, spanID: UInt64, parent: UInt64?, traceState: String?, name: String, kind: UInt64, start: UInt64, end: UInt64
    ) {
        let parent = parent == 0 ? nil : parent
        let (stateLength, nameLength) = (traceState?.utf8.count, name.utf8.count)
        let size = 18 + 10 + (stateLength.map { OTLPWire.fieldSize(length: $0) } ?? 0) + (parent == nil ? 0 : 10)
            + OTLPWire.fieldSize(length: nameLength) + 1 + OTLPWire.varintSize(kind) + 9 + 9
        protoWrite(size: size) { cursor in
            cursor.key(OTLPSpanField.traceID, OTLPWire.lengthDelimited)
            cursor.byte(16)
            cursor.bigEndian(trace.traceHigh)
            cursor.bigEndian(trace.traceLow)
            cursor.key(OTLPSpanField.spanID, OTLPWire.lengthDelimited)
            cursor.byte(8)
            cursor.bigEndian(spanID)
            if let traceState, let stateLength { cursor.string(OTLPSpanField.traceState, traceState, length: stateLength) }
            if let parent {
                cursor.key(OTLPSpanField.parentSpanID, OTLPWire.lengthDelimited)
                cursor.byte(8)
                cursor.bigEndian(parent)
            }
            cursor.string(OTLPSpanField.name, name, length: nameLength)
            cursor.varintField(OTLPSpanField.kind, kind)
            cursor.fixed64(OTLPSpanField.start, start)
            cursor.fixed64(OTLPSpanField.end, end)
        }
    }

    /// A `Span.Event` without attributes at `time`; nothing when `time` is 0 (it did not happen).
    mutating func protoEvent(_ name: String, at time: UInt64) {
        guard time != 0 else { return }
        let nameLength = name.utf8.count
        let body = 9 + OTLPWire.fieldSize(length: nameLength)
        protoWrite(size: OTLPWire.fieldSize(length: body)) { cursor in
            cursor.key(OTLPSpanField.events, OTLPWire.lengthDelimited)
            cursor.varint(UInt64(body))
            cursor.fixed64(1, time)
            cursor.string(2, name, length: nameLength)
        }
    }

    /// `Span.status`: error (`code` 2), with `message` when there is one.
    mutating func protoErrorStatus(_ message: String?) {
        let messageLength = message?.utf8.count
        let body = (messageLength.map { OTLPWire.fieldSize(length: $0) } ?? 0) + 2
        protoWrite(size: OTLPWire.fieldSize(length: body)) { cursor in
            cursor.key(OTLPSpanField.status, OTLPWire.lengthDelimited)
            cursor.varint(UInt64(body))
            if let message, let messageLength { cursor.string(2, message, length: messageLength) }
            cursor.varintField(3, 2)
        }
    }
}
