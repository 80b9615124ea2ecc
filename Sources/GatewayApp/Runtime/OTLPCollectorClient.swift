import Foundation
import GatewayProxy
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The trace exporter's side of the collector: one keep-alive HTTP/1.1 connection (TLS for `https://`) on one event
/// loop, one POST at a time, each answered or failed within the export timeout. Written on SwiftNIO directly: through
/// async-http-client an export cost about half a millisecond of CPU in its request machinery and in the hops between
/// the exporting task, the client's loop and back, some 3 µs per call at 100% sampling (docs/performance.md).
///
/// `@unchecked Sendable` because it is confined to `loop`: every method runs there.
final class OTLPCollectorClient: @unchecked Sendable {
    /// Where the collector is, from `tracing.endpoint`.
    struct Endpoint: Equatable {
        var tls: Bool
        var host: String
        var port: Int
        /// The request target: the URL's path and query, `/` when it has none.
        var target: String
        /// The `Host` header: the host as the URL spells it, with its port when the URL has one.
        var authority: String

        /// Reads an `http://` or `https://` URL; nil for anything else.
        init?(_ url: String) {
            guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
                  scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
            else { return nil }
            tls = scheme == "https"
            self.host = host
            port = components.port ?? (tls ? 443 : 80)
            let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
            target = components.percentEncodedQuery.map { path + "?" + $0 } ?? path
            let literal = host.contains(":") ? "[\(host)]" : host
            authority = components.port.map { "\(literal):\($0)" } ?? literal
        }
    }

    /// Why an export got no answer.
    enum Failure: Error, CustomStringConvertible {
        /// No answer within the export timeout.
        case timedOut(milliseconds: Int64)
        /// The collector closed the connection before it answered.
        case closed

        var description: String {
            switch self {
            case .timedOut(let milliseconds): "no answer within \(milliseconds) ms"
            case .closed: "the collector closed the connection before answering"
            }
        }
    }

    let loop: any EventLoop
    private let endpoint: Endpoint
    private let ssl: NIOSSLContext?
    /// Every request's head but its length.
    private let head: HTTPRequestHead
    private let timeout: TimeAmount
    private var channel: (any Channel)?
    /// The export waiting for its answer, and the timer that abandons it.
    private var pending: (promise: EventLoopPromise<HTTPResponseStatus>, timer: Scheduled<Void>)?
    /// Counts the exports, so a late callback of an abandoned one (its connect failing after its timeout) cannot
    /// settle or close what belongs to the next.
    private var exchange = 0

    /// A client for `endpoint`; `tls` verifies an `https://` collector (and presents the gateway's identity to it).
    init(endpoint: Endpoint, headers: [(String, String)], tls: TLSConfiguration?, timeout: TimeAmount, loop: any EventLoop) throws {
        self.endpoint = endpoint
        self.loop = loop
        self.timeout = timeout
        ssl = endpoint.tls ? try NIOSSLContext(configuration: tls ?? .makeClientConfiguration()) : nil
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.target)
        head.headers.add(name: "Host", value: endpoint.authority)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        self.head = head
    }

    /// POSTs `body`: the collector's status, or why none came within the timeout. One at a time.
    func post(_ body: ByteBuffer) -> EventLoopFuture<HTTPResponseStatus> {
        loop.preconditionInEventLoop()
        precondition(pending == nil, "one export at a time")
        let promise = loop.makePromise(of: HTTPResponseStatus.self)
        let milliseconds = timeout.nanoseconds / 1_000_000
        exchange += 1
        let id = exchange
        let timer = loop.assumeIsolated().scheduleTask(in: timeout) {
            guard id == self.exchange else { return }
            self.finish(.failure(Failure.timedOut(milliseconds: milliseconds)), close: true)
        }
        pending = (promise, timer)
        var head = head
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        connection().assumeIsolated().whenComplete { result in
            guard id == self.exchange else { return }
            switch result {
            case .failure(let error):
                self.finish(.failure(error), close: true)
            case .success(let channel):
                // Abandoned meanwhile (the timer): nothing is sent on a connection the timer closed.
                guard self.pending != nil, self.channel === channel else { return }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        return promise.futureResult
    }

    /// Closes the connection (the exporter has stopped).
    func close() {
        loop.preconditionInEventLoop()
        channel.take()?.close(promise: nil)
    }

    /// The open connection, or a new one.
    private func connection() -> EventLoopFuture<any Channel> {
        if let channel, channel.isActive { return loop.makeSucceededFuture(channel) }
        channel = nil
        let (ssl, host) = (ssl, endpoint.host)
        return ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Known from registration on: a TLS handshake's failure is reported by this channel, and may be
                    // reported before the connect's own future has run its callbacks.
                    self.channel = channel
                    if let ssl {
                        let handler = try NIOSSLClientHandler(context: ssl, serverHostname: TLSServerName.forHost(host))
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(CollectorResponseHandler(client: self))
                }
            }
            .connect(host: host, port: endpoint.port)
    }

    /// The collector answered on `channel` (`keepAlive`: it may carry the next export), or `channel` failed. A
    /// connection already given up (closed by the timer, replaced) has no export of its own left to settle.
    fileprivate func received(_ result: Result<HTTPResponseStatus, any Error>, keepAlive: Bool, on channel: any Channel) {
        guard channel === self.channel else { return }
        finish(result, close: !keepAlive)
    }

    private func finish(_ result: Result<HTTPResponseStatus, any Error>, close: Bool) {
        // State first: closing runs the handler's channelInactive at once, which must find nothing left to settle.
        let pending = pending.take()
        if close, let channel = channel.take() { channel.close(promise: nil) }
        guard let (promise, timer) = pending else { return }
        timer.cancel()
        promise.completeWith(result)
    }
}

/// The last handler of a collector connection: the status of each answer, and errors, to the client.
private final class CollectorResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let client: OTLPCollectorClient
    private var head: HTTPResponseHead?

    init(client: OTLPCollectorClient) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = head.take() else { return }
            client.received(.success(head.status), keepAlive: head.isKeepAlive, on: context.channel)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        client.received(.failure(error), keepAlive: false, on: context.channel)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.received(.failure(OTLPCollectorClient.Failure.closed), keepAlive: false, on: context.channel)
        context.fireChannelInactive()
    }
}
