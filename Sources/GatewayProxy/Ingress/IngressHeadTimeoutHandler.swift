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
    /// The one timer of the connection. It is not moved on every request: a deadline that moves later leaves it
    /// where it is, and when it fires early it re-arms for the deadline then in force. On a busy keep-alive
    /// connection it fires about once per idle timeout instead of being scheduled and cancelled twice a request.
    private var timer: Scheduled<Void>?
    /// When `timer` fires.
    private var timerAt: NIODeadline = .distantFuture
    /// The deadline in force and what it bounds; nil while none applies (a request is being answered).
    private var due: (at: NIODeadline, kind: Deadline)?
    /// Request heads seen whose final response has not been written yet.
    private var outstanding = 0
    /// No request has started yet: the header-read deadline applies, not the idle one.
    private var firstRequest = true
    /// A request head arrived and its end has not.
    private var requestOpen = false

    /// Where a graceful stop is for this connection. One that arrives while no request is open is held back until
    /// a request arrives (then the request is served with `Connection: close`) or `quiesceGrace` passes in silence
    /// (then the connection closes). It is handed to the pipeline handler once at most.
    private var gracefulStop = GracefulStop.none

    private enum GracefulStop {
        case none, held, forwarded
    }

    private enum Deadline {
        case head, body, idle, quiesce
    }

    /// How long an idle connection may still send its request after a graceful stop began: a client whose
    /// request was already on its way when the gateway stopped accepting gets its answer, not a reset.
    static let quiesceGrace: TimeAmount = .seconds(2)

    init(runtime: ProxyRuntime) { self.runtime = runtime }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard case .none = gracefulStop else { return }
        if outstanding == 0 && !requestOpen {
            gracefulStop = .held
            arm(.quiesce, context: context)
        } else {
            gracefulStop = .forwarded
            context.fireUserInboundEventTriggered(event)
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A connection whose HTTP handlers arrive after the stop began (its TLS handshake was still running when
        // the stop was announced) is told here: it missed the event.
        if runtime.isQuiescing {
            gracefulStop = .held
            arm(.quiesce, context: context)
        } else if context.channel.isActive {
            arm(.head, context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { stop() }

    func channelActive(context: ChannelHandlerContext) {
        if due == nil && firstRequest { arm(.head, context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
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
            due = nil
            if outstanding == 0 { arm(.idle, context: context) }
        }
        context.fireChannelRead(data)
        if case .held = gracefulStop, case .head = unwrapInboundIn(data) {
            // Now that the pipeline holds a request, the held-back stop makes it answer with `Connection: close`.
            gracefulStop = .forwarded
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Asks for the next read while the connection's one request is answered. The pipelining handler above holds
    /// that read until the answer is written, and NIO meanwhile takes the socket out of epoll and puts it back
    /// afterwards: two `epoll_ctl` calls per request, which nginx does not make. Asked for here, below the
    /// pipelining handler, the read keeps the socket registered. A request read meanwhile waits in the pipelining
    /// handler as before; with two outstanding the hold applies again, so a client that pipelines without reading
    /// its answers is still held to one read's worth, and a graceful stop keeps the hold.
    func channelReadComplete(context: ChannelHandlerContext) {
        if outstanding == 1, case .none = gracefulStop { context.read() }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            outstanding = max(0, outstanding - 1)
            if outstanding == 0 && !requestOpen { arm(.idle, context: context) }
        }
        context.write(data, promise: promise)
    }

    private func delay(_ deadline: Deadline) -> TimeAmount {
        switch deadline {
        case .head: runtime.limits.headerReadTimeout
        case .body, .idle: runtime.limits.idleTimeout
        case .quiesce: Self.quiesceGrace
        }
    }

    /// Sets the deadline in force; the timer moves only when it would fire too late for it.
    private func arm(_ deadline: Deadline, context: ChannelHandlerContext) {
        let at = NIODeadline.now() + delay(deadline)
        due = (at, deadline)
        if timer == nil || timerAt > at { schedule(at: at, context: context) }
    }

    private func schedule(at: NIODeadline, context: ChannelHandlerContext) {
        timer?.cancel()
        timerAt = at
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) {
            self.fired(context: context)
        }
    }

    private func fired(context: ChannelHandlerContext) {
        timer = nil
        timerAt = .distantFuture
        guard context.channel.isActive, let (at, deadline) = due else { return }
        if NIODeadline.now() < at {
            schedule(at: at, context: context)
            return
        }
        due = nil
        let seconds = Double(delay(deadline).nanoseconds) / 1e9
        switch deadline {
        case .head:
            runtime.connectionRefusals.count(.requestHeadTimeout)
            IngressRefusal.answer(
                GatewayError(.requestTimeout, "No complete request head arrived within \(seconds) s."),
                context: context, runtime: runtime, wrap: wrapOutboundOut)
        case .body:
            // The request handler owns the call: it answers (or closes) and aborts any upstream exchange.
            context.fireErrorCaught(IngressRequestFailure(
                error: GatewayError(.requestTimeout, "The request body stalled for more than \(seconds) s.")))
        case .idle, .quiesce:
            context.close(promise: nil)
        }
    }

    private func stop() {
        timer?.cancel()
        timer = nil
        timerAt = .distantFuture
        due = nil
    }
}

/// A request the gateway handler already holds went bad below it (a framing error in its body, a stalled body):
/// the handler refuses the call with this error, aborts any upstream exchange and closes the connection.
struct IngressRequestFailure: Error {
    /// The refusal to send.
    let error: GatewayError
}
