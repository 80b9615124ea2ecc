import NIOCore

/// Stops reading from a connection whose answers are not being read, and closes it if that lasts.
///
/// Without it a client that pipelines requests and never reads would make the gateway queue answers in memory
/// without bound. While the channel is not writable (its outbound buffer is above NIO's high-water mark) no more
/// bytes are read; if it stays so for the idle timeout the connection is closed. A TLS connection has it below
/// TLS; a plain one has the same gate inside its `LingeringCloseHandler`, which saves every read and write a hop.
final class IngressBackpressureHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    private var gate: StalledWriterGate

    init(stallTimeout: TimeAmount) { gate = StalledWriterGate(stallTimeout: stallTimeout) }

    func read(context: ChannelHandlerContext) {
        gate.read(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        gate.writabilityChanged(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        gate.stop()
        context.fireChannelInactive()
    }
}

/// The backpressure rule itself, for the handler that carries it: reads wait while the channel is not writable,
/// and a stall that lasts `stallTimeout` closes the connection (from the carrying handler down).
struct StalledWriterGate {
    private let stallTimeout: TimeAmount
    private var readPending = false
    private var stall: Scheduled<Void>?

    init(stallTimeout: TimeAmount) { self.stallTimeout = stallTimeout }

    /// A read asked for: passed on while the channel is writable, else held until it is.
    mutating func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    /// Releases a held read when the channel drains; starts the stall's clock when it fills.
    mutating func writabilityChanged(context: ChannelHandlerContext) {
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
    }

    /// The channel closed: the stall's clock stops.
    mutating func stop() {
        stall?.cancel()
        stall = nil
    }
}
