// The least a SwiftNIO reverse proxy does for the bench peer's load: HTTP/1.1 in, the request passed on over mTLS
// with keep-alive to the peer's Klarna stand-in, an `Authorization` header set, the answer relayed. No caller check,
// no merchant, no rate limit, no audit, no metrics: what NIO's pipeline, codecs and TLS cost per call on this
// machine, against which bench/gateway-vs-nginx.sh reads how much of the gateway's cost is its own work.
//   bare-proxy-bench PORT UPSTREAM_PORT CA_PEM CLIENT_PEM CLIENT_KEY [EVENT_LOOPS]
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where and how to reach the upstream; shared by every loop.
struct Upstream: Sendable {
    let port: Int
    let tls: NIOSSLContext
}

/// One event loop's idle upstream connections.
final class Pool: @unchecked Sendable {  // @unchecked: used on its own event loop only
    var idle: [Channel] = []
}

/// The answer's parts go back to the caller's connection; at its end the upstream connection is idle again.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    var caller: ChannelHandlerContext?
    var release: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let caller else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            let response = HTTPResponseHead(version: .http1_1, status: head.status, headers: head.headers)
            caller.write(NIOAny(HTTPServerResponsePart.head(response)), promise: nil)
        case .body(let buffer):
            caller.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            self.caller = nil
            caller.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            release?()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        caller?.close(promise: nil)
        caller = nil
    }
}

/// A caller's connection: each request goes out on an idle upstream connection of this loop, or a new one.
final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    let pool: Pool
    let upstream: Upstream
    var head: HTTPRequestHead?

    init(pool: Pool, upstream: Upstream) {
        self.pool = pool
        self.upstream = upstream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var request):
            request.headers.replaceOrAdd(name: "Authorization", value: "Basic bare-proxy")
            request.headers.remove(name: "Klarna-Gateway-Merchant")
            head = request
        case .body:
            break  // the load sends GETs
        case .end:
            guard let request = head else { return }
            head = nil
            // A connection the upstream closed while idle is dropped here rather than written to.
            while let channel = pool.idle.popLast() {
                if channel.isActive {
                    send(request, on: channel, context: context)
                    return
                }
            }
            connect(on: context.eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let channel): self.send(request, on: channel, context: context)
                case .failure: context.close(promise: nil)
                }
            }
        }
    }

    private func send(_ request: HTTPRequestHead, on channel: Channel, context: ChannelHandlerContext) {
        let handler = try! channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
        handler.caller = context
        handler.release = { [pool] in pool.idle.append(channel) }
        channel.write(HTTPClientRequestPart.head(request), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    private func connect(on loop: any EventLoop) -> EventLoopFuture<Channel> {
        let tls = upstream.tls
        return ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: "127.0.0.1", port: upstream.port)
    }
}

/// Serves on `port` until killed.
func serve(port: Int, upstream: Upstream, loops: Int) throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
    var pools: [ObjectIdentifier: Pool] = [:]
    for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = Pool() }
    let poolsByLoop = pools
    let server = try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 1024)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(ProxyHandler(pool: poolsByLoop[ObjectIdentifier(channel.eventLoop)]!, upstream: upstream))
            }
        }
        .bind(host: "127.0.0.1", port: port).wait()
    print("bare-proxy-bench serving on 127.0.0.1:\(port)")
    fflush(nil)  // every stream: the bench waits for this line in a file, where stdout is block-buffered
    try server.closeFuture.wait()
}

let arguments = CommandLine.arguments
guard arguments.count >= 6, let port = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
    print("usage: bare-proxy-bench PORT UPSTREAM_PORT CA_PEM CLIENT_PEM CLIENT_KEY [EVENT_LOOPS]")
    exit(2)
}
var tls = TLSConfiguration.makeClientConfiguration()
tls.trustRoots = .file(arguments[3])
tls.certificateChain = try NIOSSLCertificate.fromPEMFile(arguments[4]).map { .certificate($0) }
tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: arguments[5], format: .pem))
try serve(port: port, upstream: Upstream(port: upstreamPort, tls: try NIOSSLContext(configuration: tls)), loops: arguments.count > 6 ? Int(arguments[6]) ?? 2 : 2)
