/// What the audit trail and the access log record of one call: identities, operation, outcome, sizes and hashes;
/// never a secret, a token, or a body.
public struct CallRecord: Sendable {
    /// Which record of the call this is.
    public enum Phase: String, Sendable, Codable {
        /// Written before anything is forwarded.
        case intent
        /// Written before the response is released.
        case outcome
        /// A call refused by the gateway: the only record it gets.
        case refusal
    }

    /// The record's phase.
    public var phase: Phase
    /// Gateway request id (also `Klarna-Gateway-Request-Id` and the `error_id` of gateway errors).
    public var requestID: String
    /// Microseconds since the Unix epoch, UTC.
    public var timeMicros: Int64
    /// What the stages learned.
    public var facts: CallFacts
    /// The caller's address.
    public var clientAddress: String?
    /// Fingerprint of the client certificate the caller presented.
    public var callerCertificateFingerprint: String?
    /// Method.
    public var method: String
    /// Path with the query reduced to parameter names and token-bearing segments replaced by their template name.
    public var path: String
    /// `Klarna-Idempotency-Key` as sent upstream.
    public var idempotencyKey: String?
    /// `Partner-Correlation-Id` as sent upstream.
    public var correlationID: String?
    /// The credential (id and version) whose key was sent.
    public var credential: CredentialRef?
    /// Fingerprint of the client certificate presented to Klarna.
    public var upstreamCertificateFingerprint: String?
    /// Request body SHA-256 (hex) and size, when the body has been read.
    public var requestBodySHA256: String?
    /// Request body size in bytes.
    public var requestBodyBytes: Int?
    /// HTTP status returned to the caller.
    public var status: Int?
    /// The gateway's refusal code, when the gateway refused.
    public var gatewayErrorCode: String?
    /// The rate-limit rule that refused or delayed the call.
    public var rateLimitRule: String?
    /// Klarna's `error_code`, when Klarna answered with an error.
    public var klarnaErrorCode: String?
    /// Klarna's `error_id`, when Klarna answered with an error.
    public var klarnaErrorID: String?
    /// Response body SHA-256 (hex).
    public var responseBodySHA256: String?
    /// Response body size in bytes.
    public var responseBodyBytes: Int?
    /// Upstream attempts made.
    public var upstreamAttempts: Int
    /// Microseconds from the first upstream attempt to the response head.
    public var upstreamLatencyMicros: Int64?
    /// The call's trace and span when tracing is on (`trace_id`/`span_id` of its access line); not audited: the
    /// audit record's correlation id is the trace id whenever the gateway made it.
    public var trace: TraceIdentity?

    /// Makes a record with nothing but the request's identity filled in.
    public init(phase: Phase, requestID: String, timeMicros: Int64, method: String, path: String) {
        self.phase = phase
        self.requestID = requestID
        self.timeMicros = timeMicros
        self.facts = CallFacts()
        self.method = method
        self.path = path
        self.upstreamAttempts = 0
    }

    /// The path as recorded: the query reduced to its parameter names, and path parameters that carry tokens
    /// (`{payment_token}`, `{payment_confirmation_token}`) replaced by their template names, since Klarna's
    /// tokens are bearer credentials of the customer.
    public static func recordedPath(rawTarget: String, operation: Operation?) -> String {
        let queryStart = rawTarget.firstIndex(ofByte: UInt8(ascii: "?"))
        // Most calls have neither a query nor a token in the path: the target is recorded as it came.
        guard queryStart != nil || operation?.hasTokenSegment == true else { return rawTarget }
        var path = String(rawTarget[..<(queryStart ?? rawTarget.endIndex)])
        if let operation, operation.hasTokenSegment {
            let template = operation.templateSegments
            var segments = path.fastSplit(UInt8(ascii: "/")).dropFirst().map(String.init)
            if segments.count == template.count {
                for (index, name) in template.enumerated() where name.hasPrefix("{") && name.lowercased().contains("token") {
                    segments[index] = String(name)
                }
                path = "/" + segments.joined(separator: "/")
            }
        }
        if let queryStart {
            let names = RequestTarget.parameterNames(of: rawTarget[rawTarget.utf8.index(after: queryStart)...])
            path += "?" + names.joined(separator: "&")
        }
        return path
    }
}
