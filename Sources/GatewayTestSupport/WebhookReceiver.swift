import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import KlarnaSimulator

/// A loopback server (plain HTTP, or HTTPS with `tls`, asking for a client certificate signed by `clientCAPEM` when
/// given) that records webhook deliveries and answers with scripted statuses, or 503 while it is marked down.
public final class WebhookReceiver: Sendable {
    /// One delivery as received.
    public struct Received: Sendable {
        /// Request target.
        public let path: String
        /// Headers, in order.
        public let headers: [(String, String)]
        /// Body bytes.
        public let body: [UInt8]
        /// When it arrived (monotonic).
        public let atNanoseconds: UInt64
        /// Whether the sender presented a client certificate (verified against the receiver's client CA).
        public let presentedCertificate: Bool
        /// The status it was answered with.
        public let status: Int

        /// A header's first value, by case-insensitive name.
        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    /// Shared between the receiver and its connection handlers.
    final class Box: Sendable {
        let state: Mutex<(received: [Received], statuses: [Int], down: Bool, hanging: Bool)>
        init(statuses: [Int]) { state = Mutex(([], statuses, false, false)) }
    }

    private let box: Box
    private let channel: any Channel
    /// The bound port.
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// `statuses` are answered in order, then 200 for everything after; `tls` makes it an HTTPS receiver.
    public init(statuses: [Int] = [], tls: SimulatorPKI.Identity? = nil, clientCAPEM: String? = nil) async throws {
        let box = Box(statuses: statuses)
        self.box = box
        let sslContext = try tls.map { identity in
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem))
            )
            if let clientCAPEM {
                configuration.certificateVerification = .noHostnameVerification
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientCAPEM.utf8)))
            }
            return try NIOSSLContext(configuration: configuration)
        }
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// Everything received so far.
    public var received: [Received] { box.state.withLock { $0.received } }

    /// While down, every delivery is recorded and answered 503.
    public func setDown(_ down: Bool) { box.state.withLock { $0.down = down } }

    /// While hanging, every delivery is recorded (status 0) and never answered: the sender waits until its timeout.
    public func setHanging(_ hanging: Bool) { box.state.withLock { $0.hanging = hanging } }

    /// Waits until `count` deliveries arrived (or the timeout passed), and returns what arrived. The default is
    /// generous for a loaded machine: the wait ends as soon as they are there.
    public func waitFor(count: Int, timeout: Duration = .seconds(60)) async throws -> [Received] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let got = received
            if got.count >= count { return got }
            try await Task.sleep(for: .milliseconds(10))
        }
        return received
    }

    /// Closes the listener.
    public func stop() async throws { try await channel.close() }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // A sender that refuses our certificate aborts the handshake: expected in the untrusted-receiver test.
            context.close(promise: nil)
        }

        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let box: Box
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(box: Box) { self.box = box }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
            case .body(var buffer): body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                guard let head else { return }
                let presented = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()) != nil
                let status = box.state.withLock { state -> Int in
                    let status = state.hanging ? 0 : state.down ? 503 : (state.statuses.isEmpty ? 200 : state.statuses.removeFirst())
                    state.received.append(Received(
                        path: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body,
                        atNanoseconds: UInt64(NIODeadline.now().uptimeNanoseconds), presentedCertificate: presented, status: status))
                    return status
                }
                guard status != 0 else { return }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
