import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// One complete HTTP response as a test sees it.
public struct TestHTTPResponse: Sendable {
    /// The status code.
    public let status: Int
    /// Every header, in wire order (repeats kept).
    public let headers: [(String, String)]
    /// The whole body.
    public let body: [UInt8]

    /// Makes a response (tests of the client itself build these).
    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.0.lowercased() == wanted }?.1
    }

    /// The body decoded as UTF-8 (invalid bytes repaired), for `#expect(response.text.contains(...))`.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// How a test client speaks TLS: which roots it trusts and, for mTLS, which identity it presents.
public struct TestTLS: Sendable {
    /// Trusted roots, PEM (one or more certificates).
    public let trustRootsPEM: String
    /// The client certificate chain, PEM; nil sends no certificate.
    public let clientCertificatePEM: String?
    /// The client private key, PEM.
    public let clientKeyPEM: String?
    /// SNI and the name the server certificate is checked against; nil skips hostname checks (chain still checked).
    public let serverName: String?
    /// ALPN protocols offered (`["h2"]` for a raw HTTP/2 client); none by default.
    public var applicationProtocols: [String] = []

    /// Makes a TLS setting; the defaults suit a server certificate issued by `TestPKI.issueServer()`.
    public init(trustRootsPEM: String, clientCertificatePEM: String? = nil, clientKeyPEM: String? = nil, serverName: String? = "localhost") {
        self.trustRootsPEM = trustRootsPEM
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.serverName = serverName
    }

    /// Builds a fresh client context; done per connection because it is cheap next to a handshake and keeps the
    /// value type free of NIOSSL references.
    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(trustRootsPEM.utf8)))
        if let clientCertificatePEM, let clientKeyPEM {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(clientCertificatePEM.utf8)).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(clientKeyPEM.utf8), format: .pem))
        }
        if serverName == nil { configuration.certificateVerification = .noHostnameVerification }
        configuration.applicationProtocols = applicationProtocols
        return try NIOSSLContext(configuration: configuration)
    }

    /// Adds the TLS client handler to a new channel's pipeline.
    func addHandler(to channel: any Channel, context: NIOSSLContext) throws {
        let handler = try NIOSSLClientHandler(context: context, serverHostname: serverName)
        try channel.pipeline.syncOperations.addHandler(handler)
    }
}

/// Why a test request failed below HTTP.
public enum TestHTTPClientError: Error, Sendable, CustomStringConvertible {
    /// The connection closed before a complete response arrived.
    case connectionClosed
    /// No complete response within the client's deadline.
    case timedOut
    /// The client was closed.
    case clientClosed

    /// A readable reason.
    public var description: String {
        switch self {
        case .connectionClosed: "connection closed before a complete response"
        case .timedOut: "no response before the deadline"
        case .clientClosed: "client closed"
        }
    }
}

/// A keep-alive HTTP/1.1 client for tests: one connection, requests one at a time, reconnecting when the peer
/// closed it.
///
/// Concurrent `send` calls wait their turn instead of pipelining, so a test sees exactly the exchange it made
/// even against a server that closes after an error. Without a group it uses NIO's shared singleton group, so a
/// forgotten `close()` leaks a socket at most, never a thread.
public final class TestHTTPClient: Sendable {
    private let host: String
    private let port: Int
    private let tls: TestTLS?
    private let group: any EventLoopGroup
    private let turn = TurnQueue()
    private let state = Mutex<ClientState>(ClientState())
    /// How long one exchange may take before the connection is dropped and the call fails.
    private let deadline: TimeAmount = .seconds(60)

    private struct ClientState {
        var channel: (any Channel)?
        var closed = false
    }

    /// Makes a client for `host:port`; nothing connects until the first `send`.
    public init(host: String = "127.0.0.1", port: Int, tls: TestTLS?, eventLoopGroup: (any EventLoopGroup)? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Sends one request and waits for the whole response; sets `Host` and `Content-Length` when absent.
    public func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> TestHTTPResponse {
        await turn.acquire()
        defer { turn.release() }
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if !head.headers.contains(name: "Host") { head.headers.add(name: "Host", value: "\(tls?.serverName ?? host):\(port)") }
        if !head.headers.contains(name: "Content-Length") && !head.headers.contains(name: "Transfer-Encoding") {
            if let body { head.headers.add(name: "Content-Length", value: String(body.count)) }
            else if ["POST", "PUT", "PATCH"].contains(method) { head.headers.add(name: "Content-Length", value: "0") }
        }
        // A kept-alive connection the server has just closed fails before any response byte: retry once, fresh.
        var attempt = 0
        while true {
            attempt += 1
            let channel = try await connectedChannel()
            let promise = channel.eventLoop.makePromise(of: TestHTTPResponse.self)
            let timeout = channel.eventLoop.scheduleTask(in: deadline) {
                promise.fail(TestHTTPClientError.timedOut)
                channel.close(promise: nil)
            }
            // A connection the server refused after the handshake (TLS 1.3 rejects client certificates late) may
            // already be closed: then the write fails and nothing else would ever complete the promise.
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { _ in promise.fail(ResponseCollector.NoResponse(sawBytes: false)) }
            channel.writeAndFlush(ResponseCollector.Request(head: head, body: body, promise: promise), promise: written)
            do {
                let response = try await promise.futureResult.get()
                timeout.cancel()
                return response
            } catch let error as ResponseCollector.NoResponse {
                timeout.cancel()
                dropChannel(channel)
                if attempt >= 2 || error.sawBytes { throw TestHTTPClientError.connectionClosed }
            } catch {
                timeout.cancel()
                dropChannel(channel)
                throw error
            }
        }
    }

    /// Closes the connection; later sends fail.
    public func close() async throws {
        let channel = state.withLock { state -> (any Channel)? in
            state.closed = true
            defer { state.channel = nil }
            return state.channel
        }
        try? await channel?.close()
    }

    private func dropChannel(_ channel: any Channel) {
        state.withLock { state in
            if state.channel === channel { state.channel = nil }
        }
        channel.close(promise: nil)
    }

    private func connectedChannel() async throws -> any Channel {
        let existing = try state.withLock { state -> (any Channel)? in
            if state.closed { throw TestHTTPClientError.clientClosed }
            return state.channel
        }
        if let existing, existing.isActive { return existing }
        let tls = self.tls
        let context = try tls?.makeContext()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, let context { try tls.addHandler(to: channel, context: context) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port).get()
        state.withLock { $0.channel = channel }
        return channel
    }
}

/// Turns one request into HTTP parts on the way out and gathers the response parts on the way in.
///
/// It holds at most one outstanding promise, because `TestHTTPClient` sends one request at a time.
final class ResponseCollector: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Request
    typealias OutboundOut = HTTPClientRequestPart

    /// A request and where its response goes.
    struct Request: Sendable {
        let head: HTTPRequestHead
        let body: [UInt8]?
        let promise: EventLoopPromise<TestHTTPResponse>
    }

    /// The connection ended without a complete response; `sawBytes` says whether part of one arrived.
    struct NoResponse: Error {
        let sawBytes: Bool
    }

    private var promise: EventLoopPromise<TestHTTPResponse>?
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise writePromise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        promise = request.promise
        head = nil
        body = []
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let bytes = request.body, !bytes.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: writePromise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            // 1xx interim responses are not the answer.
            if responseHead.status.code >= 100 && responseHead.status.code < 200 { return }
            head = responseHead
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let responseHead = head, let promise else { return }
            self.promise = nil
            self.head = nil
            let response = TestHTTPResponse(
                status: Int(responseHead.status.code), headers: responseHead.headers.map { ($0.name, $0.value) }, body: body
            )
            body = []
            promise.succeed(response)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(NoResponse(sawBytes: head != nil))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // TLS refusals and resets mid-response surface here; the test wants the error, not a hang.
        if head == nil, error is NIOSSLError || error is IOError {
            fail(error)
        } else {
            fail(NoResponse(sawBytes: head != nil))
        }
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        guard let promise else { return }
        self.promise = nil
        promise.fail(error)
    }
}

/// A FIFO async lock, granted in arrival order: `send` calls take turns on the one connection, and the
/// hostile-input suites take turns on their shared gateway.
public final class TurnQueue: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Makes a free lock.
    public init() {}

    /// Waits for the turn.
    public func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let runNow = state.withLock { state -> Bool in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if runNow { continuation.resume() }
        }
    }

    /// Passes the turn to the next waiter.
    public func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// Raw bytes over TCP (optionally TLS), for malformed-request tests the HTTP client refuses to produce.
public enum RawSocket {
    /// Writes `bytes`, then reads until the peer closes or `readTimeout` passes, and returns what was read.
    public static func exchange(
        host: String = "127.0.0.1", port: Int, tls: TestTLS?, bytes: [UInt8], readTimeout: Duration = .seconds(5)
    ) async throws -> [UInt8] {
        let context = try tls?.makeContext()
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, let context { try tls.addHandler(to: channel, context: context) }
                    try channel.pipeline.syncOperations.addHandler(ByteCollector())
                }
            }
            .connect(host: host, port: port).get()
        let collector = try await channel.pipeline.handler(type: ByteCollector.self).get()
        let nanoseconds = readTimeout.components.seconds * 1_000_000_000 + readTimeout.components.attoseconds / 1_000_000_000
        let timeout = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { channel.close(promise: nil) }
        try? await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
        try? await channel.closeFuture.get()
        timeout.cancel()
        return try await channel.eventLoop.submit { collector.bytes }.get()
    }
}

/// Keeps every byte read until the channel closes; errors just close it, because a raw test wants the bytes.
final class ByteCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    /// Only touched on the channel's event loop.
    var bytes: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
