import GatewayCore
import GatewayProxy
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The listeners marked `klarna_webhooks: true`: HTTP/1.1 (what Klarna sends), TLS from the listener's files
/// (reloaded with the proxy's, through `tlsContexts`), one `WebhookReceiverHandler` per connection. Separate from the proxy's listeners, so the proxy's request path
/// never shares a pipeline with a handler that writes to the store.
public final class WebhookServer: Sendable {
    private let channels: [(name: String, channel: any Channel)]
    /// The TLS context each listener gives new connections: a reload replaces them, open connections keep theirs.
    public let tlsContexts: ListenerTLSContexts
    /// Open and refused connections across these listeners (their own count, apart from the proxy's).
    public let connectionLimit: IngressConnectionLimit

    /// The port each listener is bound to, by name.
    public var boundPorts: [String: Int] {
        Dictionary(channels.map { ($0.name, $0.channel.localAddress?.port ?? 0) }, uniquingKeysWith: { first, _ in first })
    }

    private init(channels: [(name: String, channel: any Channel)], tlsContexts: ListenerTLSContexts, connectionLimit: IngressConnectionLimit) {
        self.channels = channels
        self.tlsContexts = tlsContexts
        self.connectionLimit = connectionLimit
    }

    /// Binds every listener; throws (closing what was bound) when one fails. A connection idle for `idleTimeout` is
    /// closed; beyond `maxConnections` open across these listeners, a new one is closed as soon as it is accepted.
    public static func start(
        listeners: [ListenerSpec], receiver: WebhookReceiver, group: any EventLoopGroup, maxConnections: Int = 10_000,
        idleTimeout: TimeAmount = .seconds(30)
    ) async throws -> WebhookServer {
        var bound: [(name: String, channel: any Channel)] = []
        // The listener faces the internet: its own count, so a flood of connections to it cannot take the proxy's
        // places (or the proxy's callers its). Refused before TLS, as the proxy's listeners refuse.
        let limit = IngressConnectionLimit(maximum: maxConnections)
        let tlsContexts = ListenerTLSContexts(offersHTTP2: false)
        do {
            for listener in listeners {
                let holder = try tlsContexts.add(listener)
                let channel = try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { channel in
                        guard limit.admit(channel) else { return channel.eventLoop.makeFailedFuture(IngressConnectionLimitReached()) }
                        return channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            // The listener faces the internet: a connection that sends nothing for a while is closed,
                            // so idle or trickling peers cannot hold sockets open.
                            try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                            try sync.addHandler(IdleConnectionCloser())
                            if let holder { try sync.addHandler(NIOSSLServerHandler(context: holder.current)) }
                            // Parse errors are answered by `WebhookReceiverHandler` in Klarna's shape and journaled, not
                            // by NIO's plain 400.
                            try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
                            try sync.addHandler(WebhookReceiverHandler(receiver: receiver))
                        }
                    }
                    .bind(host: listener.host, port: listener.port).get()
                bound.append((listener.name, channel))
            }
        } catch {
            for (_, channel) in bound { try? await channel.close() }
            throw error
        }
        return WebhookServer(channels: bound, tlsContexts: tlsContexts, connectionLimit: limit)
    }

    /// Stops accepting; connections in flight finish their answer.
    public func stop() async {
        for (_, channel) in channels { try? await channel.close() }
    }
}

/// Reads one request at a time (the pipelining handler serialises them), keeps at most 1 MB of body, and writes
/// the receiver's answer.
final class WebhookReceiverHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let receiver: WebhookReceiver
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    /// A request is being answered: a parse error then only closes the connection after that answer.
    private var answering = false
    private var closeAfterAnswer = false

    init(receiver: WebhookReceiver) { self.receiver = receiver }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        // After a parse error the byte stream cannot be trusted: answer (unless an answer is under way) and close.
        guard !answering else {
            closeAfterAnswer = true
            return
        }
        answering = true
        head = nil
        body = []
        let detail = parserError == .headerOverflow ? "The request head is too large." : "The request is malformed HTTP (\(parserError))."
        receiver.refuseMalformed(detail: detail, clientAddress: context.channel.remoteAddress?.ipAddress, on: context.eventLoop)
            .assumeIsolated().whenComplete { result in
                self.write(result, keepAlive: false, context: context)
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            // A declared length over the limit is refused without reading (and keeping) the body.
            tooLarge = head.headers.first(name: "content-length").flatMap { Int($0) }.map { $0 > WebhookReceipt.maximumBodyBytes } ?? false
        case .body(var chunk):
            guard !tooLarge else { return }
            if body.count + chunk.readableBytes > WebhookReceipt.maximumBodyBytes {
                tooLarge = true
                body = []
            } else {
                body.append(contentsOf: chunk.readBytes(length: chunk.readableBytes) ?? [])
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let request = WebhookReceiver.Request(
                method: head.method.rawValue, target: head.uri, keyID: head.headers.first(name: "klarna-signing-key-id"),
                signature: head.headers.first(name: "klarna-signature"), body: tooLarge ? [] : body, tooLarge: tooLarge,
                clientAddress: context.channel.remoteAddress?.ipAddress)
            body = []
            let keepAlive = head.isKeepAlive && !tooLarge
            answering = true
            receiver.handle(request, on: context.eventLoop).assumeIsolated().whenComplete { result in
                self.answering = false
                self.write(result, keepAlive: keepAlive && !self.closeAfterAnswer, context: context)
            }
        }
    }

    private func write(_ result: Result<WebhookReceiver.Answer, any Error>, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let answer: WebhookReceiver.Answer
        switch result {
        case .success(let value): answer = value
        case .failure:
            answer = WebhookReceiver.Answer(status: 500, body: "", requestID: RequestID.make(), refusal: GatewayError(.internalError, "Internal error"))
        }
        let wrap: (HTTPServerResponsePart) -> NIOAny = { NIOAny($0) }
        let done: EventLoopFuture<Void>
        if let refusal = answer.refusal {
            done = RefusalResponse(refusal, requestID: answer.requestID, generatedKey: nil, close: !keepAlive).write(to: context, wrap: wrap)
        } else {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(answer.body.utf8.count))
            headers.add(name: "Klarna-Gateway-Request-Id", value: answer.requestID)
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: answer.body)))), promise: nil)
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
            done = promise.futureResult
        }
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// Closes a connection when `IdleStateHandler` reports that nothing was read for its timeout.
final class IdleConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
