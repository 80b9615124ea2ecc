import GatewayCore

/// Tracing as the data plane uses it: which calls are sampled and the queue their finished spans go to. Nil in
/// `ProxyRuntime` when tracing is off, so a call then does nothing here at all. A class: the request path hands it
/// to its trace hooks several times per call, and a reference is the cheapest thing to hand over.
public final class CallTracing: Sendable {
    /// The gateway's sampling decision, made when a call's head arrives.
    public let sampling: TraceSampling
    /// Where finished spans wait for the exporter.
    public let spans: SpanQueue

    /// Makes the settings.
    public init(sampling: TraceSampling, spans: SpanQueue) {
        self.sampling = sampling
        self.spans = spans
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

    /// `Span.SpanKind` values of OTLP.
    enum Kind {
        static let `internal`: UInt64 = 1
        static let server: UInt64 = 2
        static let client: UInt64 = 3
    }
}
