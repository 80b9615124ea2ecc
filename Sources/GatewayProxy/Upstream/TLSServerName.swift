import NIOCore

/// The name a TLS client sends as its server name (SNI) and verifies the server's certificate against.
public enum TLSServerName {
    /// `host` itself, or nil for an IPv4 or IPv6 address literal: SNI cannot carry an address (RFC 6066, section 3)
    /// and NIOSSL refuses one, and without a name the certificate is checked against the address. Parsed as an
    /// address rather than judged by its first character, so a name such as `1klarna.example` is still sent.
    public static func forHost(_ host: String) -> String? {
        (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }
}
