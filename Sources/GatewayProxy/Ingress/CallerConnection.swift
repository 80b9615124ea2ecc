import Crypto
import GatewayCore
import NIOCore
import NIOSSL

/// What a caller's connection says about who is calling: its IP address and the fingerprint of its verified
/// client certificate. Read once per connection: an HTTP/1 handler reads it on its first request, and an HTTP/2
/// connection when its streams are set up, so a stream (one per call) reads nothing of its own. The admin listener
/// reads its connections with it too, so admins' certificates are fingerprinted exactly as callers' are.
package struct CallerConnection: Sendable {
    /// The caller's IP address.
    package let address: String?
    /// The lowercase hex SHA-256 of the client certificate's DER, when one was verified.
    package let fingerprint: String?

    /// Reads `channel`, the connection (the channel that holds TLS), on its loop.
    package static func read(_ channel: any Channel) -> CallerConnection {
        let certificate = try? channel.pipeline.syncOperations.nioSSL_peerCertificate()
        return CallerConnection(
            address: channel.remoteAddress?.ipAddress,
            fingerprint: (try? certificate?.toDERBytes()).map { Hex.encode(SHA256.hash(data: $0)) })
    }
}
