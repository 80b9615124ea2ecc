import NIOCore

/// Stops reading from a connection whose answers are not being read, and closes it if that lasts.
///
/// Without it a client that pipelines requests and never reads would make the gateway queue answers in memory
/// without bound. While the channel is not writable (its outbound buffer is above NIO's high-water mark) no more
/// bytes are read; if it stays so for the idle timeout the connection is closed.
final class IngressBackpressureHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    private let stallTimeout: TimeAmount
    private var readPending = false
    private var stall: Scheduled<Void>?

    init(stallTimeout: TimeAmount) { self.stallTimeout = stallTimeout }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stall?.cancel()
            stall = nil
            if readPending {
                readPending = false
                context.read()
            }
        } else if stall == nil {
            stall = context.eventLoop.assumeIsolated().scheduleTask(in: stallTimeout) {
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stall?.cancel()
        stall = nil
        context.fireChannelInactive()
    }
}
