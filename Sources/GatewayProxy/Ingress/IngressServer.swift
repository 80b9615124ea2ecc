import GatewayCore
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL

/// One ingress listener as the data plane needs it: address, TLS material already read from files.
public struct ListenerSpec: Sendable {
    /// Name for logs.
    public var name: String
    /// Bind address.
    public var host: String
    /// Bind port; 0 picks a free one.
    public var port: Int
    /// TLS, or nil for plain HTTP (loopback only, checked by the config loader).
    public var tls: ServerTLS?
    /// Offer HTTP/2 by ALPN.
    public var http2: Bool

    /// Makes a listener spec.
    public init(name: String, host: String, port: Int, tls: ServerTLS?, http2: Bool) {
        self.name = name
        self.host = host
        self.port = port
        self.tls = tls
        self.http2 = http2
    }
}

/// A listener's TLS material and client-certificate policy.
public struct ServerTLS: Sendable {
    /// How a listener treats client certificates.
    public enum ClientAuthentication: Sendable {
        /// Never asked for.
        case none
        /// Verified when presented.
        case optional
        /// Required and verified.
        case required
    }

    /// Certificate chain, PEM.
    public var certificateChainPEM: String
    /// Private key, PEM.
    public var privateKey: Secret
    /// CA for client certificates, PEM.
    public var clientCAPEM: String?
    /// Client-certificate policy.
    public var clientAuthentication: ClientAuthentication

    /// Makes TLS settings.
    public init(certificateChainPEM: String, privateKey: Secret, clientCAPEM: String?, clientAuthentication: ClientAuthentication) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKey = privateKey
        self.clientCAPEM = clientCAPEM
        self.clientAuthentication = clientAuthentication
    }

    func makeContext(http2: Bool) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(privateKey.exposedValue.utf8), format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        switch clientAuthentication {
        case .none: configuration.certificateVerification = .none
        case .optional: configuration.certificateVerification = .optionalVerification
        case .required: configuration.certificateVerification = .noHostnameVerification
        }
        if let clientCAPEM {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientCAPEM.utf8)))
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// The ingress side: binds every listener and gives each connection the gateway's HTTP pipeline.
public final class IngressServer: Sendable {
    /// The bound channels by listener name.
    private let channels: [(name: String, channel: any Channel)]

    /// The port each listener is bound to, by name.
    public var boundPorts: [String: Int] {
        Dictionary(channels.map { ($0.name, $0.channel.localAddress?.port ?? 0) }, uniquingKeysWith: { first, _ in first })
    }

    private init(channels: [(name: String, channel: any Channel)]) { self.channels = channels }

    /// Binds every listener; throws (and closes what was bound) if any fails.
    public static func start(listeners: [ListenerSpec], runtime: ProxyRuntime, group: any EventLoopGroup) async throws -> IngressServer {
        var bound: [(name: String, channel: any Channel)] = []
        do {
            for listener in listeners {
                let context = try listener.tls?.makeContext(http2: listener.http2)
                let http2 = listener.http2 && context != nil
                let channel = try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 1024)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.maxMessagesPerRead, value: 16)
                    .childChannelInitializer { channel in
                        // Counted even when over the limit, so the count stays right when it closes; such a
                        // connection is answered 503 GATEWAY_OVERLOADED and closed.
                        let overloaded = !runtime.connections.enterAlways()
                        channel.closeFuture.whenComplete { _ in runtime.connections.leave() }
                        return channel.eventLoop.makeCompletedFuture {
                            if let context {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                            }
                        }.flatMap {
                            if http2 {
                                return channel.configureHTTP2SecureUpgrade(
                                    h2ChannelConfigurator: { channel in configureHTTP2(channel, runtime: runtime, overloaded: overloaded) },
                                    http1ChannelConfigurator: { channel in configureHTTP1(channel, runtime: runtime, overloaded: overloaded) }
                                )
                            }
                            return configureHTTP1(channel, runtime: runtime, overloaded: overloaded)
                        }
                    }
                    .bind(host: listener.host, port: listener.port).get()
                bound.append((listener.name, channel))
                runtime.logger.notice(
                    "listening", metadata: ["listener": "\(listener.name)", "address": "\(channel.localAddress?.description ?? "?")"])
            }
        } catch {
            for (_, channel) in bound { try? await channel.close() }
            throw error
        }
        return IngressServer(channels: bound)
    }

    /// Stops accepting connections.
    public func stopAccepting() async {
        for (_, channel) in channels { try? await channel.close() }
    }
}

/// HTTP/1.1: pipelining is serialised by NIO's pipeline handler, so the gateway handler sees one request at a time.
@Sendable
func configureHTTP1(_ channel: any Channel, runtime: ProxyRuntime, overloaded: Bool = false) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
        try sync.addHandler(IngressProtocolErrorHandler(runtime: runtime))
        try sync.addHandler(GatewayRequestHandler(runtime: runtime, isHTTP2: false, connectionOverloaded: overloaded))
    }
}

/// HTTP/2: each stream gets its own handler, translated to HTTP/1-style parts.
@Sendable
func configureHTTP2(_ channel: any Channel, runtime: ProxyRuntime, overloaded: Bool = false) -> EventLoopFuture<Void> {
    channel.configureHTTP2Pipeline(
        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
    ) { stream in
        stream.eventLoop.makeCompletedFuture {
            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
            try stream.pipeline.syncOperations.addHandler(GatewayRequestHandler(runtime: runtime, isHTTP2: true, connectionOverloaded: overloaded))
        }
    }.map { _ in () }
}
