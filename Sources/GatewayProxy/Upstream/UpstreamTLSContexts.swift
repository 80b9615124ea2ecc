import GatewayCore
import NIOCore
import NIOConcurrencyHelpers
import NIOSSL

/// TLS client contexts for upstream connections, one per client identity, shared by every event loop.
///
/// Building an `NIOSSLContext` parses keys and certificates and costs milliseconds, so it is done once per
/// identity; the fingerprint key means a rotated certificate gets a new context (and so new connections)
/// without disturbing calls still using the old one.
public final class UpstreamTLSContexts: Sendable {
    private let trustRoots: NIOSSLTrustRoots
    private let contexts = NIOLockedValueBox<[String: NIOSSLContext]>([:])

    /// Trusts the certificates in `caPEM`, or the system roots when nil.
    public init(caPEM: String?) throws {
        if let caPEM {
            trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        } else {
            trustRoots = .default
        }
    }

    /// The context presenting `identity`, built on first use.
    public func context(for identity: ClientIdentity) throws -> NIOSSLContext {
        if let existing = contexts.withLockedValue({ $0[identity.fingerprint] }) { return existing }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = trustRoots
        configuration.certificateVerification = .fullVerification
        configuration.applicationProtocols = ["http/1.1"]
        configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(identity.certificateChainPEM.utf8)).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.exposedValue.utf8), format: .pem))
        let context = try NIOSSLContext(configuration: configuration)
        return contexts.withLockedValue { contexts in
            if let raced = contexts[identity.fingerprint] { return raced }
            contexts[identity.fingerprint] = context
            return context
        }
    }

    /// Drops contexts for identities no longer in use, so rotated keys do not stay in memory.
    public func retain(only fingerprints: Set<String>) {
        contexts.withLockedValue { contexts in contexts = contexts.filter { fingerprints.contains($0.key) } }
    }
}
