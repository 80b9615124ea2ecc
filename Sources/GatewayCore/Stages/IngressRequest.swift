/// What the transport hands the pure stages: the request head and what TLS verified.
public struct IngressRequest<Headers: HeaderLookup> {
    /// The method as sent.
    public let method: String
    /// The raw request target.
    public let target: String
    /// The headers.
    public let headers: Headers
    /// SHA-256 fingerprint (lowercase hex) of the client certificate TLS verified, if any.
    public let clientCertificateFingerprint: String?

    /// Makes a request.
    public init(method: String, target: String, headers: Headers, clientCertificateFingerprint: String?) {
        self.method = method
        self.target = target
        self.headers = headers
        self.clientCertificateFingerprint = clientCertificateFingerprint
    }
}

/// How a caller proved who it is, as the audit trail records it.
public enum AuthenticationMethod: String, Sendable, Hashable, Codable {
    /// A bearer token alone.
    case token
    /// A verified client certificate alone.
    case certificate
    /// Both, bound to each other.
    case tokenAndCertificate = "token+certificate"
}

/// What the stages learned about a call so far; a refusal carries it so the audit record says as much as is known.
public struct CallFacts: Sendable {
    /// The authenticated caller.
    public var callerID: String?
    /// How it authenticated.
    public var authentication: AuthenticationMethod?
    /// The merchant acted for.
    public var merchantID: String?
    /// The partner whose account is used.
    public var partnerID: String?
    /// The Klarna account in the forwarded path.
    public var account: String?
    /// The environment.
    public var environment: KlarnaEnvironment?
    /// The operation matched.
    public var operation: Operation?
    /// The effective release.
    public var release: String?
    /// The validated target.
    public var target: RequestTarget?

    /// Nothing known yet.
    public init() {}
}
