/// The request as it will be sent upstream.
public struct UpstreamRequestHead: Sendable {
    /// Method.
    public let method: String
    /// Origin-form target with the account segment rewritten to the KRN and the query kept.
    public let target: String
    /// Headers to send, in order; `Authorization` among them.
    public private(set) var headers: [(String, String)]
    /// Where to send it.
    public let endpoint: UpstreamEndpoint
    /// The mTLS identity to present.
    public let identity: ClientIdentity
    /// Which sealed credential produced `Authorization`.
    public let credential: CredentialRef
    /// The `Partner-Correlation-Id` sent (the caller's, or one the gateway made).
    public let correlationID: String

    /// Adds a header the transport decides on (the idempotency key the gateway generates), in the room the list
    /// was made with: no second allocation, and every attempt sends the same list.
    public mutating func addHeader(_ name: String, _ value: String) {
        headers.append((name, value))
    }
}

/// Stage 5: strip what must not leave and add what Klarna needs: the credential, the account, the correlation id.
public struct CredentialInjection: Sendable {
    /// Hop-by-hop headers (RFC 9110 §7.6.1) and ones the transport sets itself; `Content-Length` stays, since
    /// the body is forwarded byte for byte and the transport frames chunked bodies itself.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "authorization", "expect", "http2-settings",
    ]

    /// Makes the stage.
    public init() {}

    /// Builds the upstream head. When the caller sent no correlation id, `correlationID` is sent (a traced
    /// call's trace id, so Klarna's support view, the trace, the audit record and the log line share one value),
    /// else one made from `requestID`.
    public func inject<H: HeaderLookup>(
        method: String, target: RequestTarget, segments: [Substring], operation: Operation?, callTarget: CallTarget,
        endpoint: UpstreamEndpoint, headers: H, requestID: String, settings: PipelineSettings, correlationID seed: String? = nil
    ) -> UpstreamRequestHead {
        let partner = callTarget.partner
        var path = endpoint.pathPrefix
        // One allocation for the target: the KRN replaces a segment of at most 64 bytes (a merchant id).
        path.reserveCapacity(endpoint.pathPrefix.utf8.count + target.path.utf8.count + (target.query?.utf8.count ?? 0) + 2 + AccountKRN.maximumLength)
        if case .merchant(let merchant, _) = callTarget, let index = operation?.accountSegmentIndex {
            for (position, segment) in segments.enumerated() {
                path += "/"
                if position == index { path += merchant.record.account.rawValue } else { path += segment }
            }
        } else {
            path += target.path
        }
        if let query = target.query {
            path += "?"
            path += query
        }

        var out: [(String, String)] = []
        // The caller's headers plus the four the gateway may add here, `Host`, and the idempotency key the
        // transport may add (`addHeader`): one allocation for the list.
        out.reserveCapacity(headers.headerCount + 6)
        var correlationID: String?
        var hasIntegrationMetadata = false
        var namesMore = false
        func collect(droppingAlso named: Set<String>) {
            headers.forEachHeader { name, value in
                // The gateway's own headers go first, before a long name is compared with anything else.
                if ASCIICase.hasPrefix(name, lowercase: "klarna-gateway-") { return }
                if settings.droppedHeaders.contains(name) {
                    if !namesMore && ASCIICase.equals(name, lowercase: "connection") { namesMore = Self.namesMore(value, settings) }
                    return
                }
                if !named.isEmpty && named.contains(ASCIICase.lowercased(name)) { return }
                if ASCIICase.equals(name, lowercase: "partner-correlation-id") { correlationID = value }
                if ASCIICase.equals(name, lowercase: "klarna-integration-metadata") { hasIntegrationMetadata = true }
                out.append((name, value))
            }
        }
        collect(droppingAlso: [])
        if namesMore {
            // Headers the request names in `Connection` are hop-by-hop too. Rare enough to collect again.
            var named = Set<String>()
            for value in headers.values(of: "connection") {
                for token in value.split(separator: ",") { named.insert(token.trimmingSpaces.lowercased()) }
            }
            out.removeAll(keepingCapacity: true)
            correlationID = nil
            hasIntegrationMetadata = false
            collect(droppingAlso: named)
        }
        let authorization: Secret
        let credential: CredentialRef
        switch callTarget {
        case .direct(let merchant, _):
            authorization = merchant.ownAuthorization ?? partner.authorization
            credential = merchant.record.apiKey ?? partner.record.apiKey
        case .merchant, .partner:
            authorization = partner.authorization
            credential = partner.record.apiKey
        }
        out.insert(("Host", endpoint.authority), at: 0)
        out.append(("Authorization", authorization.exposedValue))
        if !hasIntegrationMetadata, let metadata = settings.integrationMetadata {
            out.append(("Klarna-Integration-Metadata", metadata))
        }
        if correlationID == nil, let seed {
            correlationID = seed
            out.append(("Partner-Correlation-Id", seed))
        } else if correlationID == nil {
            // Klarna documents the correlation id as alphanumeric: the request id without its hyphens.
            let generated = String(unsafeUninitializedCapacity: requestID.utf8.count) { buffer in
                var length = 0
                for byte in requestID.utf8 where byte != UInt8(ascii: "-") {
                    buffer[length] = byte
                    length += 1
                }
                return length
            }
            correlationID = generated
            out.append(("Partner-Correlation-Id", generated))
        }
        return UpstreamRequestHead(
            method: method, target: path, headers: out, endpoint: endpoint, identity: partner.clientIdentity,
            credential: credential, correlationID: correlationID ?? ""
        )
    }
}

extension CredentialInjection {
    /// Whether a `Connection` value names a header beyond those dropped anyway (`close`, `keep-alive`, …): only
    /// then is the list collected a second time.
    static func namesMore(_ connection: String, _ settings: PipelineSettings) -> Bool {
        connection.split(separator: ",").contains { token in
            let name = token.trimmingSpaces
            return !name.isEmpty && !ASCIICase.equals(String(name), lowercase: "close") && !settings.droppedHeaders.contains(String(name))
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
