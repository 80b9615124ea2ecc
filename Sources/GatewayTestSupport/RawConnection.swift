import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// One HTTP/1 response as read off a raw connection: status, headers (lowercased names) and body.
public struct RawHTTPResponse: Sendable {
    /// The status code.
    public let status: Int
    /// Headers in wire order, names lowercased.
    public let headers: [(String, String)]
    /// The body (Content-Length framed; the gateway never chunks its own answers).
    public let body: [UInt8]

    /// The first value of a header.
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.0 == lowered }?.1
    }
}

/// A long-lived raw TCP (optionally TLS) connection for hostile-input tests: the test writes exact bytes when it
/// likes, reads responses one at a time, and can tell whether the peer closed. Unlike `RawSocket.exchange` it
/// keeps the connection open between writes, for pipelining, keep-alive and slow clients.
public final class RawConnection: Sendable {
    private let channel: any Channel
    private let sink: RawSink

    private init(channel: any Channel, sink: RawSink) {
        self.channel = channel
        self.sink = sink
    }

    /// Connects; `receiveBuffer` shrinks the socket's receive buffer (a client that reads slowly).
    public static func open(
        host: String = "127.0.0.1", port: Int, tls: TestTLS?, receiveBuffer: Int? = nil, autoRead: Bool = true
    ) async throws -> RawConnection {
        let context = try tls?.makeContext()
        let sink = RawSink()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelOption(.autoRead, value: autoRead)
        if let receiveBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, let context { try tls.addHandler(to: channel, context: context) }
                    try channel.pipeline.syncOperations.addHandler(sink)
                }
            }
            .connect(host: host, port: port).get()
        return RawConnection(channel: channel, sink: sink)
    }

    /// Writes `bytes`; a failure (the peer closed) is reported, not thrown, because hostile tests expect it.
    @discardableResult
    public func send(_ bytes: [UInt8]) async -> Bool {
        do {
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
            return true
        } catch {
            return false
        }
    }

    /// Writes `text` as UTF-8.
    @discardableResult
    public func send(_ text: String) async -> Bool { await send(Array(text.utf8)) }

    /// Writes without waiting for the write to complete (a client whose writes the server may never drain).
    public func sendWithoutWaiting(_ bytes: [UInt8]) {
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    /// Asks the socket for more bytes (with `autoRead: false`).
    public func readMore() { channel.read() }

    /// The next complete response, or nil if the connection closed (or `timeout` passed) before one arrived.
    public func response(timeout: Duration = .seconds(20)) async -> RawHTTPResponse? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (parsed, closed) = sink.state.withLock { state -> (RawHTTPResponse?, Bool) in
                guard let parsed = Self.parse(state.bytes[state.consumed...]) else { return (nil, state.closed) }
                state.consumed += parsed.1
                return (parsed.0, false)
            }
            if let parsed { return parsed }
            if closed { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Waits until the peer closes the connection; false if it is still open after `timeout`.
    public func waitForClose(timeout: Duration = .seconds(20)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isClosed { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return isClosed
    }

    /// The connection is closed (by either side).
    public var isClosed: Bool { sink.state.withLock { $0.closed } }

    /// The TLS handshake completed: the server accepted this connection and finished its side.
    public var handshakeCompleted: Bool { sink.state.withLock { $0.handshakeCompleted } }

    /// Every byte received so far.
    public var received: [UInt8] { sink.state.withLock { $0.bytes } }

    /// Closes the connection.
    public func close() async { try? await channel.close() }

    /// Parses one response at the start of `bytes`, returning it and its length.
    static func parse(_ bytes: ArraySlice<UInt8>) -> (RawHTTPResponse, Int)? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4 else { return nil }
        var headEnd: Int?
        var index = bytes.startIndex
        while index + 3 < bytes.endIndex {
            if bytes[index] == 13, Array(bytes[index..<index + 4]) == terminator {
                headEnd = index
                break
            }
            index += 1
        }
        guard let headEnd else { return nil }
        let lines = String(decoding: bytes[bytes.startIndex..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let bodyStart = headEnd + 4
        let length = (100...199).contains(status) ? 0 : headers.first { $0.0 == "content-length" }.flatMap { Int($0.1) } ?? 0
        guard bytes.endIndex - bodyStart >= length else { return nil }
        let response = RawHTTPResponse(status: status, headers: headers, body: Array(bytes[bodyStart..<bodyStart + length]))
        return (response, bodyStart + length - bytes.startIndex)
    }
}

/// What a raw connection has received so far.
struct RawConnectionState {
    var bytes: [UInt8] = []
    var consumed = 0
    var closed = false
    var handshakeCompleted = false
}

/// Collects bytes and notes the close; errors (resets, TLS alerts) close the channel, which the test observes.
private final class RawSink: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let state = Mutex(RawConnectionState())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        state.withLock { $0.bytes += buffer.readableBytesView }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.withLock { $0.closed = true }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { state.withLock { $0.handshakeCompleted = true } }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
