import NIOCore
import NIOTLS

/// Closes a TLS connection whose handshake has not completed within the header-read timeout: a client that
/// connects and says nothing (or trickles a ClientHello) must not hold a connection slot forever.
///
/// It sits right after the TLS handler, sees the handshake-completed event and then removes itself; from there the
/// HTTP/1 head deadline (or HTTP/2's own limits) take over.
final class IngressHandshakeDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let refusals: ConnectionRefusals
    private var deadline: Scheduled<Void>?
    private var failed = false

    init(timeout: TimeAmount, refusals: ConnectionRefusals) {
        self.timeout = timeout
        self.refusals = refusals
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if deadline == nil { arm(context: context) }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            deadline?.cancel()
            deadline = nil
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// An error before the handshake completed is the handshake's (this handler is gone once it completes).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !failed {
            failed = true
            refusals.count(.tlsHandshakeFailed)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    private func arm(context: ChannelHandlerContext) {
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.refusals.count(.tlsHandshakeTimeout)
            context.close(promise: nil)
        }
    }
}
