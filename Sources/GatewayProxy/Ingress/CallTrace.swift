import GatewayCore
import NIOHTTP1
import Tracing

/// Tracing as the data plane uses it: the tracer spans are made with (OpenTelemetry's in `serve`) and which calls
/// are sampled. Nil in `ProxyRuntime` when tracing is off, so a call then does nothing here at all. A class: the
/// request path hands it to its trace hooks several times per call, and as a struct (an existential tracer inside)
/// each hand-over copied and destroyed it through value witnesses, tracing off (a nil) included: 0.9% of a call.
public final class CallTracing: Sendable {
    /// Makes the spans; it must continue the trace in a context extracted from `traceparent`/`tracestate`.
    public let tracer: any Tracer
    /// The gateway's own sampling decision; the tracer should keep every span it is given (always-on).
    public let sampling: TraceSampling

    /// Makes the settings.
    public init(tracer: any Tracer, sampling: TraceSampling) {
        self.tracer = tracer
        self.sampling = sampling
    }

    /// Span names, so the tests and `docs/observability.md` name the same things.
    public enum Name {
        /// The server span of one call.
        public static let call = "klarna.gateway.call"
        /// The rate-limit stage, shaping wait included.
        public static let rateLimit = "klarna.gateway.rate_limit"
        /// The intent's journal commit (the audit trail's group commit).
        public static let auditIntent = "klarna.gateway.audit.intent"
        /// The outcome's journal commit.
        public static let auditOutcome = "klarna.gateway.audit.outcome"
        /// A refusal's journal commit.
        public static let auditRefusal = "klarna.gateway.audit.refusal"
        /// One upstream attempt (client span).
        public static let attempt = "klarna.upstream.attempt"
    }
}

/// One call's spans, held in its `CallState` as a value: with tracing off, or for a call not sampled, it holds
/// no span and costs no allocation. Every method is a no-op without the span it would touch, so the handler calls
/// them unconditionally at its existing steps.
struct CallTrace {
    /// The call's trace (nil with tracing off): the caller's trace, else a new one.
    var identity: TraceIdentity?
    /// The caller's span, from `traceparent`.
    var parent: TraceIdentity?
    /// When the head arrived (wall clock), for a span made after the fact (`errors` sampling).
    var startedNanos: UInt64 = 0
    var call: (any Span)?
    var rateLimit: (any Span)?
    var journal: (any Span)?
    var attempt: (any Span)?

    /// No trace: tracing is off.
    init() {}

    /// With tracing on: reads the caller's trace context, decides sampling and, if sampled, starts the call's
    /// server span as a child of the caller's span.
    init(_ tracing: CallTracing?, headers: HTTPHeaders) {
        guard let tracing else { return }
        startedNanos = DefaultTracerClock.now.nanosecondsSinceEpoch
        parent = headers.first(name: "traceparent").flatMap { TraceIdentity(traceparent: $0) }
        var random = SystemRandomNumberGenerator()
        guard tracing.sampling.samples(parent: parent, random: random.next()) else {
            identity = parent.map { TraceIdentity(traceHigh: $0.traceHigh, traceLow: $0.traceLow, spanID: 0, sampled: false) }
                ?? TraceIdentity.newTrace(using: &random)
            return
        }
        var context = ServiceContext.topLevel
        // Only a traceparent the gateway can read is handed on; `tracestate` travels with it.
        if parent != nil { tracing.tracer.extract(headers, into: &context, using: HeaderExtractor()) }
        startCall(tracing, context: context, at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: startedNanos))
    }

    /// A call not sampled that turned out an error, with `errors` sampling: its server span is made now, starting
    /// when the call did. It continues the caller's trace; without one it is a new trace, whose id differs from
    /// the correlation id already sent (the span carries that id as `klarna.gateway.correlation_id`).
    mutating func promoteIfError(_ tracing: CallTracing?, record: CallRecord) {
        guard let tracing, call == nil, identity != nil, tracing.sampling.errors,
              TraceSampling.isError(status: record.status, gatewayErrorCode: record.gatewayErrorCode)
        else { return }
        var context = ServiceContext.topLevel
        if let parent {
            tracing.tracer.extract(["traceparent": parent.traceparent], into: &context, using: DictionaryExtractor())
        }
        startCall(tracing, context: context, at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: startedNanos))
    }

    private mutating func startCall(_ tracing: CallTracing, context: ServiceContext, at start: DefaultTracerClock.Timestamp) {
        let span = tracing.tracer.startSpan(CallTracing.Name.call, context: context, ofKind: .server, at: start)
        call = span
        // The span's own ids, as the tracer propagates them (the Tracing API has no other way to ask).
        var carrier: [String: String] = [:]
        tracing.tracer.inject(span.context, into: &carrier, using: DictionaryInjector())
        identity = carrier["traceparent"].flatMap { TraceIdentity(traceparent: $0) } ?? identity
    }

    /// A child of the call's span, or nil when the call has none.
    private func child(_ tracing: CallTracing?, _ name: String, kind: SpanKind = .internal) -> (any Span)? {
        guard let tracing, let call else { return nil }
        return tracing.tracer.startSpan(name, context: call.context, ofKind: kind)
    }

    // MARK: - Stages

    /// The rate-limit stage begins (once per call, however often the limiter is asked again).
    mutating func rateLimitStarted(_ tracing: CallTracing?) {
        guard rateLimit == nil else { return }
        rateLimit = child(tracing, CallTracing.Name.rateLimit)
    }

    /// The limiter shapes the call: it waits `nanoseconds` before going on.
    func rateLimitShaped(wait nanoseconds: Int64) {
        rateLimit?.addEvent(SpanEvent(name: "shaping wait", attributes: ["klarna.gateway.rate_limit.wait_ms": .int64(nanoseconds / 1_000_000)]))
        rateLimit?.attributes["klarna.gateway.rate_limit.shaped"] = true
    }

    /// The stage ends: admitted, or refused by `rule`.
    mutating func rateLimitEnded(refusedBy rule: String? = nil) {
        guard let span = rateLimit else { return }
        rateLimit = nil
        if let rule {
            span.attributes["klarna.gateway.rate_limit.rule"] = SpanAttribute.string(rule)
            span.setStatus(SpanStatus(code: .error, message: rule))
        }
        span.end()
    }

    /// A journal commit (intent, outcome or refusal record) begins.
    mutating func journalStarted(_ tracing: CallTracing?, _ name: String) {
        journal?.end()
        journal = child(tracing, name)
    }

    /// The commit is done; `recorded` false when the journal failed it (the call then fails closed).
    mutating func journalEnded(recorded: Bool) {
        guard let span = journal else { return }
        journal = nil
        if !recorded { span.setStatus(SpanStatus(code: .error, message: "not recorded")) }
        span.end()
    }

    /// Upstream attempt `number` begins (connection taken or being opened).
    mutating func attemptStarted(_ tracing: CallTracing?, number: Int, host: String) {
        attemptEnded(failure: "superseded")
        guard let span = child(tracing, CallTracing.Name.attempt, kind: .client) else { return }
        span.updateAttributes {
            $0["klarna.gateway.attempt"] = SpanAttribute.int64(Int64(number))
            $0["server.address"] = SpanAttribute.string(host)
        }
        attempt = span
    }

    /// Something happened in the attempt: a pooled connection reused, or a new one's TCP connect and TLS
    /// handshake; Klarna's first byte.
    func attemptEvent(_ name: String) {
        attempt?.addEvent(SpanEvent(name: name))
    }

    /// The attempt is over: answered with `status`, or failed (`failure` names how).
    mutating func attemptEnded(status: Int? = nil, failure: String? = nil) {
        guard let span = attempt else { return }
        attempt = nil
        if let status {
            span.attributes["http.response.status_code"] = SpanAttribute.int64(Int64(status))
            if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
        }
        if let failure {
            span.attributes["error.type"] = SpanAttribute.string(failure)
            span.setStatus(SpanStatus(code: .error, message: failure))
        }
        span.end()
    }

    /// Whether any of the call's spans is still open: only then has `finish` anything to do.
    var hasOpenSpans: Bool { call != nil || rateLimit != nil || journal != nil || attempt != nil }

    /// The call is over: every span still open ends, and the call's span takes the record's attributes.
    mutating func finish(record: CallRecord, generatedKey: Bool) {
        rateLimitEnded()
        journalEnded(recorded: true)
        attemptEnded(failure: record.status == nil ? "call ended" : nil)
        guard let span = call else { return }
        call = nil
        span.updateAttributes { attributes in
            attributes["http.request.method"] = SpanAttribute.string(record.method)
            attributes["klarna.gateway.request_id"] = SpanAttribute.string(record.requestID)
            if let caller = record.facts.callerID { attributes["klarna.gateway.caller"] = SpanAttribute.string(caller) }
            if let merchant = record.facts.merchantID { attributes["klarna.merchant.id"] = SpanAttribute.string(merchant) }
            if let operation = record.facts.operation {
                attributes["klarna.operation.id"] = SpanAttribute.string(operation.id)
                attributes["klarna.operation.family"] = SpanAttribute.string(operation.family)
                attributes["klarna.rate_limit.category"] = SpanAttribute.string(operation.category)
            }
            if let release = record.facts.release { attributes["klarna.release"] = SpanAttribute.string(release) }
            if let environment = record.facts.environment { attributes["klarna.environment"] = SpanAttribute.string(environment.rawValue) }
            if let status = record.status { attributes["http.response.status_code"] = SpanAttribute.int64(Int64(status)) }
            if let code = record.gatewayErrorCode { attributes["klarna.gateway.error_code"] = SpanAttribute.string(code) }
            if let code = record.klarnaErrorCode { attributes["klarna.error_code"] = SpanAttribute.string(code) }
            if let rule = record.rateLimitRule { attributes["klarna.gateway.rate_limit.rule"] = SpanAttribute.string(rule) }
            if let correlation = record.correlationID { attributes["klarna.gateway.correlation_id"] = SpanAttribute.string(correlation) }
            attributes["klarna.gateway.upstream_attempts"] = SpanAttribute.int64(Int64(record.upstreamAttempts))
            attributes["klarna.idempotency_key"] = SpanAttribute.string(generatedKey ? "generated" : record.idempotencyKey == nil ? "none" : "caller")
        }
        if let code = record.gatewayErrorCode {
            span.setStatus(SpanStatus(code: .error, message: code))
        } else if (record.status ?? 0) >= 500 {
            span.setStatus(SpanStatus(code: .error))
        }
        span.end()
    }
}

/// Reads trace headers from a request head.
private struct HeaderExtractor: Extractor {
    func extract(key: String, from carrier: HTTPHeaders) -> String? { carrier.first(name: key) }
}

/// Reads trace headers from a dictionary.
private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// Writes trace headers into a dictionary.
private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}
