import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A small closed-loop load generator with mTLS (`klarna-simulator bench`), because wrk cannot present a client
/// certificate: each connection keeps one request in flight on a keep-alive connection until the time is up.
public enum SimulatorLoadGenerator {
    /// What to send and how hard.
    public struct Plan: Sendable {
        /// Target host.
        public var host: String
        /// Target port.
        public var port: Int
        /// Request path.
        public var path: String
        /// Extra request headers (`Authorization`).
        public var headers: [(String, String)]
        /// Concurrent keep-alive connections.
        public var connections: Int
        /// How long to run.
        public var seconds: Int
        /// PEM trust roots, client certificate and key.
        public var trustRootsPEM: String
        /// Client certificate, PEM.
        public var certificatePEM: String
        /// Client key, PEM.
        public var keyPEM: String

        /// Makes a plan.
        public init(host: String, port: Int, path: String, headers: [(String, String)], connections: Int, seconds: Int, trustRootsPEM: String, certificatePEM: String, keyPEM: String) {
            self.host = host
            self.port = port
            self.path = path
            self.headers = headers
            self.connections = connections
            self.seconds = seconds
            self.trustRootsPEM = trustRootsPEM
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
        }
    }

    /// Counts shared by every connection.
    final class Counters: Sendable {
        let completed = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let non2xx = Atomic<Int>(0)
    }

    /// The outcome of a run.
    public struct Result: Sendable, CustomStringConvertible {
        /// Responses received.
        public let completed: Int
        /// Responses that were not 2xx.
        public let non2xx: Int
        /// Connections that failed.
        public let failedConnections: Int
        /// Seconds measured.
        public let seconds: Double
        /// Responses per second.
        public var rate: Double { Double(completed) / seconds }
        /// One line summary.
        public var description: String {
            "completed=\(completed) non2xx=\(non2xx) failed_connections=\(failedConnections) seconds=\(seconds) rate=\(Int(rate))/s"
        }
    }

    /// Runs the plan on `threads` event loops of its own.
    public static func run(_ plan: Plan, threads: Int) async throws -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(plan.trustRootsPEM.utf8)))
        configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(plan.certificatePEM.utf8)).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(plan.keyPEM.utf8), format: .pem))
        configuration.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: configuration)
        let counters = Counters()
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: plan.path)
        head.headers.add(name: "Host", value: "\(plan.host):\(plan.port)")
        for (name, value) in plan.headers { head.headers.add(name: name, value: value) }
        let requestHead = head
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = NIODeadline.now() + .seconds(Int64(plan.seconds))
        var channels: [any Channel] = []
        for _ in 0..<plan.connections {
            do {
                let channel = try await ClientBootstrap(group: group)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            try channel.pipeline.syncOperations.addHandler(LoopHandler(head: requestHead, deadline: deadline, counters: counters))
                        }
                    }
                    .connect(host: plan.host, port: plan.port).get()
                channels.append(channel)
            } catch {
                counters.failed.add(1, ordering: .relaxed)
            }
        }
        for channel in channels { try? await channel.closeFuture.get() }
        let elapsed = clock.now - start
        try await group.shutdownGracefully()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Result(
            completed: counters.completed.load(ordering: .relaxed), non2xx: counters.non2xx.load(ordering: .relaxed),
            failedConnections: counters.failed.load(ordering: .relaxed), seconds: seconds
        )
    }

    /// Sends the next request as soon as the previous response ends, until the deadline.
    final class LoopHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        let head: HTTPRequestHead
        let deadline: NIODeadline
        let counters: Counters

        init(head: HTTPRequestHead, deadline: NIODeadline, counters: Counters) {
            self.head = head
            self.deadline = deadline
            self.counters = counters
        }

        func channelActive(context: ChannelHandlerContext) {
            send(context: context)
            context.fireChannelActive()
        }

        private func send(context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let response):
                if response.status.code >= 300 { counters.non2xx.add(1, ordering: .relaxed) }
            case .body: break
            case .end:
                counters.completed.add(1, ordering: .relaxed)
                if NIODeadline.now() < deadline { send(context: context) } else { context.close(promise: nil) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            counters.failed.add(1, ordering: .relaxed)
            context.close(promise: nil)
        }
    }
}
