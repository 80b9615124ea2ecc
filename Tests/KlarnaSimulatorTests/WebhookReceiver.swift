import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
@testable import KlarnaSimulator

/// A loopback server (plain HTTP, or HTTPS with `tls`) that records webhook deliveries and answers with scripted
/// statuses.
final class WebhookReceiver: Sendable {
    struct Received: Sendable {
        let path: String
        let headers: [(String, String)]
        let body: [UInt8]
        let atNanoseconds: UInt64

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    /// Shared between the receiver and its connection handlers.
    final class Box: Sendable {
        let state: Mutex<(received: [Received], statuses: [Int])>
        init(statuses: [Int]) { state = Mutex(([], statuses)) }
    }

    private let box: Box
    private let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    /// `statuses` are answered in order, then 200 for everything after; `tls` makes it an HTTPS receiver.
    init(statuses: [Int] = [], tls: SimulatorPKI.Identity? = nil) async throws {
        let box = Box(statuses: statuses)
        self.box = box
        let sslContext = try tls.map { identity in
            try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem))
            ))
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

    var received: [Received] { box.state.withLock { $0.received } }

    func waitFor(count: Int, timeout: Duration = .seconds(10)) async throws -> [Received] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let got = received
            if got.count >= count { return got }
            try await Task.sleep(for: .milliseconds(10))
        }
        return received
    }

    func stop() async throws { try await channel.close() }

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
                let entry = Received(path: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body, atNanoseconds: DispatchTimeLike.now())
                let status = box.state.withLock { state -> Int in
                    state.received.append(entry)
                    return state.statuses.isEmpty ? 200 : state.statuses.removeFirst()
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

enum DispatchTimeLike {
    static func now() -> UInt64 { UInt64(NIODeadline.now().uptimeNanoseconds) }
}
