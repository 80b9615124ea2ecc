import GatewayCore
import NIOConcurrencyHelpers
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

    /// Builds the server context (parses the certificate chain and key): what `check` and reloads validate with.
    public func makeContext(http2: Bool) throws -> NIOSSLContext {
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
///
/// Each TLS listener reads its server context from `tlsContexts` when a connection arrives, so a reload makes
/// new handshakes use a new certificate while established connections keep theirs. Accepted connections are
/// tracked so that `quiesce` can let in-flight calls finish before the process exits.
public final class IngressServer: Sendable {
    /// The bound channels by listener name.
    private let channels: [(name: String, channel: any Channel)]
    /// The TLS context each TLS listener gives new connections, by listener name.
    public let tlsContexts: ListenerTLSContexts
    /// Open and refused connections across every listener.
    public let connectionLimit: IngressConnectionLimit

    /// The port each listener is bound to, by name.
    public var boundPorts: [String: Int] {
        Dictionary(channels.map { ($0.name, $0.channel.localAddress?.port ?? 0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Connections accepted and not yet closed.
    public var openConnections: Int { connectionLimit.open }

    /// Told when a graceful stop begins, for connections configured after it.
    private let runtime: ProxyRuntime

    private init(
        channels: [(name: String, channel: any Channel)], tlsContexts: ListenerTLSContexts, connectionLimit: IngressConnectionLimit,
        runtime: ProxyRuntime
    ) {
        self.runtime = runtime
        self.channels = channels
        self.tlsContexts = tlsContexts
        self.connectionLimit = connectionLimit
    }

    /// Binds every listener; throws (and closes what was bound) if any fails.
    public static func start(listeners: [ListenerSpec], runtime: ProxyRuntime, group: any EventLoopGroup) async throws -> IngressServer {
        var bound: [(name: String, channel: any Channel)] = []
        let tlsContexts = ListenerTLSContexts(offersHTTP2: true)
        let connectionLimit = IngressConnectionLimit(maximum: runtime.limits.maxConnections)
        let stallTimeout = runtime.limits.idleTimeout
        let headerReadTimeout = runtime.limits.headerReadTimeout
        do {
            for listener in listeners {
                let holder = try tlsContexts.add(listener)
                let http2 = listener.http2 && holder != nil
                let channel = try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 1024)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.maxMessagesPerRead, value: 16)
                    .childChannelInitializer { channel in
                        guard connectionLimit.admit(channel) else {
                            return channel.eventLoop.makeFailedFuture(IngressConnectionLimitReached())
                        }
                        return channel.eventLoop.makeCompletedFuture {
                            if let holder {
                                try channel.pipeline.syncOperations.addHandler(IngressBackpressureHandler(stallTimeout: stallTimeout))
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: holder.current))
                                try channel.pipeline.syncOperations.addHandler(IngressHandshakeDeadlineHandler(timeout: headerReadTimeout, refusals: runtime.connectionRefusals))
                            }
                            // Below the HTTP codecs, so that bytes a caller still sends after its answer are dropped
                            // unparsed while the connection closes without a reset. A plain connection's backpressure
                            // rule is carried by it (right above the socket, where the handler of its own would sit).
                            try channel.pipeline.syncOperations.addHandler(LingeringCloseHandler(stallTimeout: holder == nil ? stallTimeout : nil))
                        }.flatMap {
                            if http2 {
                                return channel.configureHTTP2SecureUpgrade(
                                    h2ChannelConfigurator: { channel in configureHTTP2(channel, runtime: runtime) },
                                    http1ChannelConfigurator: { channel in configureHTTP1(channel, runtime: runtime) }
                                )
                            }
                            return configureHTTP1(channel, runtime: runtime)
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
        return IngressServer(channels: bound, tlsContexts: tlsContexts, connectionLimit: connectionLimit, runtime: runtime)
    }

    /// Stops accepting connections.
    public func stopAccepting() async {
        for (_, channel) in channels { try? await channel.close() }
    }

    /// Graceful stop: stops accepting, asks every connection to finish (HTTP/1 closes after the response in
    /// flight, or at once when idle; HTTP/2 sends GOAWAY and closes when its streams are done), waits up to
    /// `grace`, then closes what is left. Returns how many connections had to be cut.
    public func quiesce(grace: Duration) async -> Int {
        await stopAccepting()
        runtime.beginQuiescing()
        for channel in connectionLimit.all {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let deadline = ContinuousClock.now + grace
        // A cancelled caller (a test tearing down) does not wait: what is left is closed at once.
        while connectionLimit.open > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = connectionLimit.all
        for channel in left { try? await channel.close() }
        return left.count
    }
}

/// HTTP/1.1: pipelining is serialised by NIO's pipeline handler, so the gateway handler sees one request at a time.
@Sendable
func configureHTTP1(_ channel: any Channel, runtime: ProxyRuntime) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
        let sync = channel.pipeline.syncOperations
        // Outbound header validation checks again what is already valid: an answer's headers are Klarna's, parsed
        // by llhttp on the way in, or the gateway's own (ids, rate-limit figures, error headers); it cost 1% of a call.
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false)
        let pipelining = try sync.handler(type: HTTPServerPipelineHandler.self)
        try sync.addHandler(IngressHeadTimeoutHandler(runtime: runtime), position: .before(pipelining))
        // Parse errors are answered by the request handler itself (`protocolError`).
        try sync.addHandler(GatewayRequestHandler(runtime: runtime, isHTTP2: false))
    }
}

/// HTTP/2: each stream gets its own handler, translated to HTTP/1-style parts.
@Sendable
func configureHTTP2(_ channel: any Channel, runtime: ProxyRuntime) -> EventLoopFuture<Void> {
    let lifetime = NIOLoopBound(HTTP2ConnectionLifetimeHandler(idleTimeout: runtime.limits.idleTimeout), eventLoop: channel.eventLoop)
    let limits = HTTP2IngressLimits(headersTotalBytes: runtime.limits.maxHeadersTotalBytes)
    // The handshake is done (ALPN chose h2): the caller's address and certificate are read once for every stream.
    let caller = CallerConnection.read(channel)
    return channel.configureHTTP2Pipeline(
        mode: .server, connectionConfiguration: limits.connection, streamConfiguration: limits.stream
    ) { stream in
        do {
            let handlers = stream.pipeline.syncOperations
            try handlers.addHandler(HTTP2EndStreamCoalescer())
            try handlers.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
            try handlers.addHandler(GatewayRequestHandler(runtime: runtime, isHTTP2: true, lifetime: lifetime.value, caller: caller))
            lifetime.value.streamOpened()
            // The loop's cached succeeded future: a new one per stream was an allocation.
            return stream.eventLoop.makeSucceededVoidFuture()
        } catch {
            return stream.eventLoop.makeFailedFuture(error)
        }
    }.flatMapThrowing { _ in
        try channel.pipeline.syncOperations.addHandler(lifetime.value)
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionErrorCloser(refusals: runtime.connectionRefusals))
        // Configured after the stop began (its handshake was still running then): it missed the event.
        if runtime.isQuiescing { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
    }
}

/// NIOHTTP2 answers a connection error (a flood, a protocol violation) with GOAWAY and reports it, but leaves the
/// connection open; this closes it, so an abusive peer does not keep its slot.
final class HTTP2ConnectionErrorCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let refusals: ConnectionRefusals
    private var counted = false

    init(refusals: ConnectionRefusals) { self.refusals = refusals }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !counted {
            counted = true
            refusals.count(.http2ConnectionError)
        }
        context.close(promise: nil)
    }
}

/// The HTTP/2 abuse limits, spelled out rather than left to NIOHTTP2's defaults so a reader sees what a flood
/// meets: a peer exceeding any of them gets GOAWAY `ENHANCE_YOUR_CALM` and the connection is closed.
struct HTTP2IngressLimits {
    /// Connection-level settings.
    var connection = NIOHTTP2Handler.ConnectionConfiguration()
    /// Stream-level settings.
    var stream = NIOHTTP2Handler.StreamConfiguration()

    init(headersTotalBytes: Int) {
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
            HTTP2Setting(parameter: .maxHeaderListSize, value: headersTotalBytes),
        ]
        // SETTINGS, PING and PRIORITY floods: 200 in any 30 s, and at most 10,000 unsent control answers queued.
        connection.controlFrameRateLimit.maximumCount = 200
        connection.controlFrameRateLimit.windowLength = .seconds(30)
        connection.maximumBufferedControlFrames = 10_000
        // Rapid reset (CVE-2023-44487): streams reset by the client count against 200 in any 30 s.
        stream.streamResetFrameRateLimit.maximumCount = 200
        stream.streamResetFrameRateLimit.windowLength = .seconds(30)
        stream.streamErrorRateLimit.maximumCount = 200
        stream.streamErrorRateLimit.windowLength = .seconds(30)
        connection.maximumRecentlyResetStreams = 32
        connection.maximumSequentialContinuationFrames = 5
    }
}
