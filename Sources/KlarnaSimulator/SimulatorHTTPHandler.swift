#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOSSL
import X509

/// Frames one HTTP/1.1 exchange at a time for the simulator: gathers the request, asks the responder, and writes the
/// answer the way the outcome says (at once, late, slowly, or cut off), because fault injection lives in the bytes.
///
/// `HTTPServerPipelineHandler` sits in front, so pipelined requests wait until this one's `.end` is written.
final class SimulatorHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Klarna refuses bodies above 1 MB with 413.
    static let maximumBodyBytes = 1 << 20

    private let responder: @Sendable (SimulatorRequest) -> SimulatorOutcome
    private let readsPeerCertificate: Bool
    private var peer: PeerIdentity?
    private var peerLoaded = false
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(readsPeerCertificate: Bool, responder: @escaping @Sendable (SimulatorRequest) -> SimulatorOutcome) {
        self.readsPeerCertificate = readsPeerCertificate
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
            tooLarge = false
        case .body(var buffer):
            if tooLarge || body.count + buffer.readableBytes > Self.maximumBodyBytes {
                tooLarge = true
                body = []
            } else {
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            let keepAlive = requestHead.isKeepAlive && !tooLarge
            if tooLarge {
                // Refused before routing, so the simulator never sees it; still say what Klarna says about mTLS.
                let status = readsPeerCertificate ? (loadPeer(context: context) == nil ? "NOT_PRESENT" : "VALID") : nil
                let headers = status.map { [("Klarna-Mtls-Verification-Status", $0)] } ?? []
                write(SimulatorOutcome(response: SimulatorResponse(status: 413, headers: headers)), keepAlive: false, context: context)
                return
            }
            let request = SimulatorRequest(method: requestHead.method.rawValue, uri: requestHead.uri, headers: requestHead.headers, body: body, peer: loadPeer(context: context))
            body = []
            write(responder(request), keepAlive: keepAlive, context: context)
        }
    }

    /// The client certificate is the same for every request on a connection: read it once.
    private func loadPeer(context: ChannelHandlerContext) -> PeerIdentity? {
        guard readsPeerCertificate, !peerLoaded else { return peer }
        peerLoaded = true
        guard let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let certificate = tls.peerCertificate, let der = try? certificate.toDERBytes()
        else { return nil }
        let subject = (try? Certificate(derEncoded: der).subject.description) ?? ""
        peer = PeerIdentity(subject: subject, fingerprint: SimulatorPKI.fingerprint(der: der))
        return peer
    }

    private func write(_ outcome: SimulatorOutcome, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders(outcome.response.headers)
        headers.replaceOrAdd(name: "Content-Length", value: String(outcome.response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: outcome.response.status), headers: headers)
        let body = outcome.response.body
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        switch outcome.delivery {
        case .normal:
            writeWhole(responseHead, body, keepAlive: keepAlive, context: context)
        case .delayed(let milliseconds):
            loop.scheduleTask(in: .milliseconds(Int64(milliseconds))) {
                let (handler, context) = bound.value
                handler.writeWhole(responseHead, body, keepAlive: keepAlive, context: context)
            }
        case .resetMidResponse:
            context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
            let half = Array(body.prefix(max(1, body.count / 2)))
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: half)))), promise: nil)
            resetConnection(context: context)
        case .resetBeforeResponse:
            resetConnection(context: context)
        case .slowBody(let milliseconds):
            context.writeAndFlush(wrapOutboundOut(.head(responseHead)), promise: nil)
            let pieces = max(1, min(10, body.count))
            let size = (body.count + pieces - 1) / max(1, pieces)
            let step = Int64(milliseconds / pieces)
            for piece in 0..<pieces {
                let chunk = Array(body.dropFirst(piece * size).prefix(size))
                let last = piece == pieces - 1
                loop.scheduleTask(in: .milliseconds(step * Int64(piece + 1))) {
                    let (handler, context) = bound.value
                    if !chunk.isEmpty {
                        context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: chunk)))), promise: nil)
                    }
                    if last { handler.finish(keepAlive: keepAlive, context: context) }
                }
            }
        }
    }

    /// Closes with linger 0, which turns the close into a TCP reset, as a dropped upstream connection looks.
    private func resetConnection(context: ChannelHandlerContext) {
        let channel = context.channel
        if let socket = channel as? any SocketOptionProvider {
            socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private func writeWhole(_ head: HTTPResponseHead, _ body: [UInt8], keepAlive: Bool, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil) }
        finish(keepAlive: keepAlive, context: context)
    }

    private func finish(keepAlive: Bool, context: ChannelHandlerContext) {
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A client that vanishes or fails the handshake is normal for a test server; just drop the connection.
        context.close(promise: nil)
    }
}
