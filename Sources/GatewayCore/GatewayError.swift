/// A refusal by the gateway itself, rendered in Klarna's error shape so callers parse one format.
///
/// The code says which rule refused; the message says what the caller can do about it and never contains a
/// secret or reveals whether a merchant the caller may not see exists.
public struct GatewayError: Error, Sendable, Hashable {
    /// The gateway's error code (`GATEWAY_FORBIDDEN`).
    public let code: Code
    /// A human-readable reason, safe to show to the caller.
    public let message: String
    /// Extra response headers (rate-limit headers, `Retry-After`).
    public var headers: [(String, String)] { extraHeaders.map { ($0.name, $0.value) } }
    /// Extra response headers kept as a hashable list.
    public let extraHeaders: [Header]

    /// A header attached to a refusal.
    public struct Header: Sendable, Hashable {
        /// Header name.
        public let name: String
        /// Header value.
        public let value: String
        /// Makes a header.
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// Makes a refusal.
    public init(_ code: Code, _ message: String, headers: [Header] = []) {
        self.code = code
        self.message = message
        self.extraHeaders = headers
    }

    /// Every gateway error code with its HTTP status and Klarna error type.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        case unauthenticated = "GATEWAY_UNAUTHENTICATED"
        case forbidden = "GATEWAY_FORBIDDEN"
        case merchantSuspended = "GATEWAY_MERCHANT_SUSPENDED"
        case badRequest = "GATEWAY_BAD_REQUEST"
        case methodNotAllowed = "GATEWAY_METHOD_NOT_ALLOWED"
        case environmentMismatch = "GATEWAY_ENVIRONMENT_MISMATCH"
        case payloadTooLarge = "GATEWAY_PAYLOAD_TOO_LARGE"
        case headersTooLarge = "GATEWAY_HEADERS_TOO_LARGE"
        case uriTooLong = "GATEWAY_URI_TOO_LONG"
        case unknownOperation = "GATEWAY_UNKNOWN_OPERATION"
        case operationNotInRelease = "GATEWAY_OPERATION_NOT_IN_RELEASE"
        case operationNotAvailable = "GATEWAY_OPERATION_NOT_AVAILABLE"
        case releaseNotAvailable = "GATEWAY_RELEASE_NOT_AVAILABLE"
        case rateLimited = "GATEWAY_RATE_LIMITED"
        case auditUnavailable = "GATEWAY_AUDIT_UNAVAILABLE"
        case overloaded = "GATEWAY_OVERLOADED"
        case upstreamUnavailable = "GATEWAY_UPSTREAM_UNAVAILABLE"
        case upstreamTimeout = "GATEWAY_UPSTREAM_TIMEOUT"
        case upstreamOutcomeUnknown = "GATEWAY_UPSTREAM_OUTCOME_UNKNOWN"
        case requestTimeout = "GATEWAY_REQUEST_TIMEOUT"
        case internalError = "GATEWAY_INTERNAL_ERROR"
        /// A path the webhook listener does not serve (it serves `POST /klarna/webhooks/{partner_id}` only).
        case notFound = "GATEWAY_NOT_FOUND"
        /// A verified webhook the store could not make durable: Klarna retries it.
        case webhookNotStored = "GATEWAY_WEBHOOK_NOT_STORED"
        /// An admin API change whose `If-Match` no longer names the resource's current version.
        case preconditionFailed = "GATEWAY_PRECONDITION_FAILED"
        /// An admin API change sent without `If-Match`.
        case preconditionRequired = "GATEWAY_PRECONDITION_REQUIRED"
        /// An admin API addition of something that already exists (a caller, a merchant, an admin of that name).
        case conflict = "GATEWAY_CONFLICT"

        /// The HTTP status this refusal is sent with.
        public var status: Int {
            switch self {
            case .unauthenticated: 401
            case .forbidden, .merchantSuspended, .operationNotAvailable: 403
            case .badRequest: 400
            case .methodNotAllowed: 405
            case .requestTimeout: 408
            case .environmentMismatch: 422
            case .payloadTooLarge: 413
            case .uriTooLong: 414
            case .headersTooLarge: 431
            case .unknownOperation, .operationNotInRelease, .notFound: 404
            case .releaseNotAvailable, .conflict: 409
            case .preconditionFailed: 412
            case .preconditionRequired: 428
            case .rateLimited: 429
            case .internalError: 500
            // Nothing reached Klarna (unreachable, breaker open, not an allowed host): 503, safe to repeat.
            case .auditUnavailable, .overloaded, .upstreamUnavailable, .webhookNotStored: 503
            case .upstreamTimeout, .upstreamOutcomeUnknown: 504
            }
        }

        /// Klarna's `error_type` for the status, so callers' existing error handling applies.
        public var errorType: String {
            switch status {
            case 401, 429: "ACCESS_ERROR"
            case 403, 404, 409: "RESOURCE_ERROR"
            case 500..<600: "TECHNICAL_ERROR"
            default: "INPUT_ERROR"
            }
        }
    }

    /// The HTTP status.
    public var status: Int { code.status }

    /// The body Klarna would send: `{"error_id","error_type","error_code","error_message"}`.
    ///
    /// `errorID` is the gateway request id, so an SRE can find the audit record and log lines from the body alone.
    public func klarnaJSON(errorID: String) -> String {
        "{\"error_id\":\(JSONText.quote(errorID)),\"error_type\":\(JSONText.quote(code.errorType)),"
            + "\"error_code\":\(JSONText.quote(code.rawValue)),\"error_message\":\(JSONText.quote(message))}"
    }
}

/// Minimal JSON string quoting for bodies the gateway writes itself (no Foundation encoder on the hot path).
public enum JSONText {
    /// Returns `text` as a quoted, escaped JSON string.
    public static func quote(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        appendQuoted(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `text` as a quoted, escaped JSON string to UTF-8 bytes (for writers that build a whole line).
    public static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most values (ids, KRNs, paths, codes) need no escape: they are copied in one piece, not a byte at a time,
        // which was most of what an access line cost the log writer's thread.
        let copied: Bool? = text.utf8.withContiguousStorageIfAvailable { bytes in
            guard !needsEscaping(bytes) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0xF))
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Whether any byte is a control character, `"` or `\`; eight bytes at a time (the bit tricks find a zero
    /// or a small byte in a word without a branch per byte).
    public static func needsEscaping(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var offset = 0
        while offset + 8 <= bytes.count {
            let word = UnsafeRawPointer(base + offset).loadUnaligned(as: UInt64.self)
            let control = (word &- ones &* 0x20) & ~word & highs
            let quote = word ^ (ones &* 0x22)
            let backslash = word ^ (ones &* 0x5C)
            let zeroQuote = (quote &- ones) & ~quote & highs
            let zeroBackslash = (backslash &- ones) & ~backslash & highs
            if control | zeroQuote | zeroBackslash != 0 { return true }
            offset += 8
        }
        while offset < bytes.count {
            let byte = base[offset]
            if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return true }
            offset += 1
        }
        return false
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}
