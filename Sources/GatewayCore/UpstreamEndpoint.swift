/// Where a partner's calls go: scheme, host, port and an optional path prefix, parsed once from a base URL.
public struct UpstreamEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The host name (SNI and `Host`).
    public let host: String
    /// The TCP port.
    public let port: Int
    /// A path prefix put before every forwarded path (normally empty).
    public let pathPrefix: String
    /// `host:port` (`host` alone for 443), the key egress rules and connection pools use; made once, since every
    /// call reads it several times.
    public let authority: String

    /// Parses `https://host[:port][/prefix]`; only HTTPS is accepted, since every call carries a credential.
    public init?(baseURL: String) {
        guard baseURL.hasPrefix("https://") else { return nil }
        let rest = baseURL.dropFirst("https://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var prefix = String(rest[slash...])
        while prefix.hasSuffix("/") { prefix.removeLast() }
        let host: Substring
        let port: Int
        if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else { return nil }
            port = parsed
        } else {
            host = authority
            port = 443
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "@") }) else { return nil }
        self.host = host.lowercased()
        self.port = port
        self.pathPrefix = prefix
        self.authority = port == 443 ? self.host : "\(self.host):\(port)"
    }

    /// `https://authority/prefix`.
    public var description: String { "https://\(authority)\(pathPrefix)" }
}

/// A host the gateway may send to, and the environment it serves.
public struct EgressRule: Sendable, Hashable, Codable {
    /// `host` or `host:port`.
    public var host: String
    /// The environment the host serves; Klarna's own hosts are recognised without a rule's say-so.
    public var environment: KlarnaEnvironment

    /// Makes a rule.
    public init(host: String, environment: KlarnaEnvironment) {
        self.host = host
        self.environment = environment
    }
}
