import GatewayCore
import NIOCore
import NIOHTTP1

/// Bounds how long an HTTP/1 connection may take to send a request head or its body, and how long it may sit idle.
///
/// A new connection must deliver its first complete head within the header-read timeout (a slow-loris client
/// trickling header bytes is answered 408 and closed); a request body may pause no longer than the idle timeout
/// between bytes (the request handler answers 408 and aborts the upstream exchange); between requests a
/// keep-alive connection is closed after the idle timeout. It sits between the request decoder and the
/// pipelining handler, so it sees parts as soon as they are parsed and writes its 408 straight to the encoder.
final class IngressHeadTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let runtime: ProxyRuntime
    private var timer: Scheduled<Void>?
    /// Request heads seen whose final response has not been written yet.
    private var outstanding = 0
    /// No request has started yet: the header-read deadline applies, not the idle one.
    private var firstRequest = true
    /// A request head arrived and its end has not.
    private var requestOpen = false

    private enum Deadline {
        case head, body, idle
    }

    init(runtime: ProxyRuntime) { self.runtime = runtime }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(.head, context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { cancel() }

    func channelActive(context: ChannelHandlerContext) {
        if timer == nil && firstRequest { arm(.head, context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            firstRequest = false
            outstanding += 1
            requestOpen = true
            arm(.body, context: context)
        case .body:
            if requestOpen { arm(.body, context: context) }
        case .end:
            requestOpen = false
            cancel()
            if outstanding == 0 { arm(.idle, context: context) }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            outstanding = max(0, outstanding - 1)
            if outstanding == 0 && !requestOpen { arm(.idle, context: context) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ deadline: Deadline, context: ChannelHandlerContext) {
        cancel()
        let delay = deadline == .head ? runtime.limits.headerReadTimeout : runtime.limits.idleTimeout
        let seconds = Double(delay.nanoseconds) / 1e9
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.timer = nil
            guard context.channel.isActive else { return }
            switch deadline {
            case .head:
                IngressRefusal.answer(
                    GatewayError(.requestTimeout, "No complete request head arrived within \(seconds) s."),
                    context: context, runtime: self.runtime, wrap: self.wrapOutboundOut)
            case .body:
                // The request handler owns the call: it answers (or closes) and aborts any upstream exchange.
                context.fireErrorCaught(IngressRequestFailure(
                    error: GatewayError(.requestTimeout, "The request body stalled for more than \(seconds) s.")))
            case .idle:
                context.close(promise: nil)
            }
        }
    }

    private func cancel() {
        timer?.cancel()
        timer = nil
    }
}

/// A request the gateway handler already holds went bad below it (a framing error in its body, a stalled body):
/// the handler refuses the call with this error, aborts any upstream exchange and closes the connection.
struct IngressRequestFailure: Error {
    /// The refusal to send.
    let error: GatewayError
}
