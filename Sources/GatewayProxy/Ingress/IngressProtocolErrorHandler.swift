import GatewayCore
import NIOCore
import NIOHTTP1

/// Answers HTTP/1 parse errors (smuggling attempts, oversize heads, bad framing) in Klarna's error shape,
/// journals them, and closes the connection: after a parse error the byte stream cannot be trusted.
final class IngressProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let runtime: ProxyRuntime
    private var responseInProgress = false
    /// A request head went on to the gateway handler and its end has not: a parse error belongs to that call.
    private var requestInProgress = false

    init(runtime: ProxyRuntime) { self.runtime = runtime }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !responseInProgress else {
            context.close(promise: nil)
            return
        }
        let gatewayError: GatewayError
        switch parserError {
        case .headerOverflow:
            gatewayError = GatewayError(.headersTooLarge, "The request head is too large.")
        case .invalidURL:
            gatewayError = GatewayError(.badRequest, "The request target is malformed.")
        default:
            gatewayError = GatewayError(.badRequest, "The request is malformed HTTP (\(parserError)).")
        }
        if requestInProgress {
            // The gateway handler may already be forwarding this call: it must refuse it and abort upstream.
            context.fireErrorCaught(IngressRequestFailure(error: gatewayError))
            return
        }
        responseInProgress = true
        runtime.connectionRefusals.count(.malformedRequest)
        IngressRefusal.answer(gatewayError, context: context, runtime: runtime, wrap: wrapOutboundOut)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: requestInProgress = true
        case .end: requestInProgress = false
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responseInProgress = true
        case .end: responseInProgress = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
