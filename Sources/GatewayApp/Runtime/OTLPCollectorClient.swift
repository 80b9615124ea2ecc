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
                  scheme == "http" || scheme == "https", var host = components.host, !host.isEmpty
            else { return nil }
            // An IPv6 literal comes with its brackets on Linux; connecting and the server name want the address.
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty, !host.contains(" ") else { return nil }
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
    /// The open connection: set when its connect succeeded for the export still waiting, so a Happy Eyeballs
    /// attempt that lost, or a connection that came after its export was abandoned, is never taken for it.
    private var channel: (any Channel)?
    /// The export waiting for its answer.
    private var pending: Pending?
    /// Counts the exports, so a late callback of an abandoned one (its connect ending after its timeout) cannot
    /// settle or close what belongs to the next.
    private var exchange = 0

    private struct Pending {
        var promise: EventLoopPromise<HTTPResponseStatus>
        /// Abandons the export at the timeout.
        var timer: Scheduled<Void>
        var head: HTTPRequestHead
        var body: ByteBuffer
        /// Sent on a connection an earlier export opened, which the collector may have closed meanwhile.
        var reused = false
        /// Already sent again once, on a new connection.
        var retried = false
    }

    /// A client for `endpoint`; `tls` verifies an `https://` collector (and presents the gateway's identity to it).
    /// Its TLS context is made here, so a CA or key file that cannot be read stops the start, not every export.
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
        var head = head
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        pending = Pending(promise: promise, timer: timer, head: head, body: body)
        send(id)
        return promise.futureResult
    }

    /// Closes the connection (the exporter has stopped).
    func close() {
        loop.preconditionInEventLoop()
        channel.take()?.close(promise: nil)
    }

    /// Writes the waiting export on the open connection, or on a new one.
    private func send(_ id: Int) {
        if let channel, channel.isActive {
            pending?.reused = true
            write(on: channel)
            return
        }
        channel = nil
        pending?.reused = false
        connect().assumeIsolated().whenComplete { result in
            guard id == self.exchange, self.pending != nil else {
                // Abandoned meanwhile: a connection that came too late is not kept.
                if case .success(let late) = result { late.close(promise: nil) }
                return
            }
            switch result {
            case .failure(let error):
                self.finish(.failure(error), close: false)
            case .success(let channel):
                self.channel = channel
                self.write(on: channel)
            }
        }
    }

    private func write(on channel: any Channel) {
        guard let pending else { return }
        channel.write(HTTPClientRequestPart.head(pending.head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(pending.body)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// A new connection; its TLS handshake, if any, runs once it is up, and its failure arrives through the handler.
    private func connect() -> EventLoopFuture<any Channel> {
        let (ssl, host) = (ssl, endpoint.host)
        return ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
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

    /// The collector answered on `channel` (`keepAlive`: it may carry the next export). A connection no longer the
    /// client's (closed by the timer, replaced, a Happy Eyeballs attempt that lost) has nothing left to settle.
    fileprivate func answered(_ status: HTTPResponseStatus, keepAlive: Bool, on channel: any Channel) {
        guard channel === self.channel else { return }
        finish(.success(status), close: !keepAlive)
    }

    /// `channel` failed with `error`.
    fileprivate func failed(_ error: any Error, on channel: any Channel) {
        guard channel === self.channel else { return }
        finish(.failure(error), close: true)
    }

    /// `channel` closed; `midAnswer` when an answer had begun on it. An export sent on a connection kept from an
    /// earlier one, closed before any answer (the collector ended it while idle, as the export went out), is sent
    /// once more on a new connection: the collector cannot have taken it.
    fileprivate func closed(midAnswer: Bool, on channel: any Channel) {
        guard channel === self.channel else { return }
        self.channel = nil
        guard let waiting = pending, waiting.reused, !waiting.retried, !midAnswer else {
            finish(.failure(Failure.closed), close: false)
            return
        }
        pending?.retried = true
        send(exchange)
    }

    private func finish(_ result: Result<HTTPResponseStatus, any Error>, close: Bool) {
        // State first: closing runs the handler's channelInactive at once, which must find nothing left to settle.
        let pending = pending.take()
        if close, let channel = channel.take() { channel.close(promise: nil) }
        guard let pending else { return }
        pending.timer.cancel()
        pending.promise.completeWith(result)
    }
}

/// The last handler of a collector connection: each answer's status, errors and the close, to the client.
private final class CollectorResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let client: OTLPCollectorClient
    /// The head of the answer being read.
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
            client.answered(head.status, keepAlive: head.isKeepAlive, on: context.channel)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        client.failed(error, on: context.channel)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.closed(midAnswer: head != nil, on: context.channel)
        context.fireChannelInactive()
    }
}
