import NIOCore

/// Closes a caller's connection the way nginx's lingering close does, so that the caller reads the answer it was
/// sent: a refusal written before the request body was read (413, 401, 403, 429 with a body on its way) followed
/// by a plain close makes the kernel answer the caller's unread bytes with a reset, and a reset destroys the
/// answer the caller had not read yet.
///
/// It sits below the HTTP codec (after TLS). A close asked for from above becomes a close of the output only
/// (after the pending writes, with TLS's close_notify); from then on everything the caller still sends is read
/// and dropped here, never parsed, until the caller closes its side, nothing arrives for `quietTimeout`,
/// `maximumTime` passes or `maximumBytes` have been dropped. Then the connection is closed.
final class LingeringCloseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny

    /// The bounds of one lingering close.
    struct Limits: Sendable {
        /// Longest wait for the next bytes from the caller.
        var quietTimeout: TimeAmount = .seconds(5)
        /// Longest lingering in all.
        var maximumTime: TimeAmount = .seconds(30)
        /// Most bytes dropped before closing anyway.
        var maximumBytes: Int = 64 << 20
    }

    private enum State {
        case open
        case lingering(dropped: Int, until: NIODeadline, promise: EventLoopPromise<Void>?)
        case closed
    }

    private let limits: Limits
    private var state = State.open
    private var timer: Scheduled<Void>?
    /// On a plain connection, the backpressure rule (`IngressBackpressureHandler`, which a TLS connection has below
    /// TLS): carried here, every read and write of a call passes one handler fewer. Lingering's own reads pass it too,
    /// as they passed the handler below.
    private var backpressure: StalledWriterGate?

    init(limits: Limits = Limits(), stallTimeout: TimeAmount? = nil) {
        self.limits = limits
        backpressure = stallTimeout.map(StalledWriterGate.init(stallTimeout:))
    }

    func read(context: ChannelHandlerContext) {
        if backpressure == nil {
            context.read()
        } else {
            backpressure!.read(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        backpressure?.writabilityChanged(context: context)
        context.fireChannelWritabilityChanged()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, case .open = state, context.channel.isActive else {
            if case .lingering = state, mode == .all {
                // A second close (a drain deadline, a shutdown) does not wait for the caller any longer.
                if let promise { context.channel.closeFuture.cascade(to: promise) }
                finish(context: context)
                return
            }
            context.close(mode: mode, promise: promise)
            return
        }
        state = .lingering(dropped: 0, until: .now() + limits.maximumTime, promise: promise)
        context.close(mode: .output).assumeIsolated().whenComplete { result in
            // Output closure not possible (already closed, or unsupported): close at once as before.
            if case .failure = result { self.finish(context: context) }
        }
        armQuietTimer(context: context)
        // Reads are asked for here, below the HTTP pipeline handler, which holds back reads while it answers.
        read(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .lingering(let dropped, let until, let promise) = state else {
            context.fireChannelRead(data)
            return
        }
        let bytes = dropped + unwrapInboundIn(data).readableBytes
        state = .lingering(dropped: bytes, until: until, promise: promise)
        if bytes > limits.maximumBytes || NIODeadline.now() >= until {
            finish(context: context)
        } else {
            armQuietTimer(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard case .lingering = state else {
            context.fireChannelReadComplete()
            return
        }
        read(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The caller closed its side: nothing more can arrive, so the close can complete.
        if case .lingering = state, let event = event as? ChannelEvent, event == .inputClosed {
            finish(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .lingering = state {
            finish(context: context)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        backpressure?.stop()
        timer?.cancel()
        timer = nil
        if case .lingering(_, _, let promise) = state { promise?.succeed(()) }
        state = .closed
        context.fireChannelInactive()
    }

    private func armQuietTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        guard case .lingering(_, let until, _) = state else { return }
        let at = min(until, .now() + limits.quietTimeout)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) {
            self.finish(context: context)
        }
    }

    private func finish(context: ChannelHandlerContext) {
        guard case .lingering(_, _, let promise) = state else { return }
        timer?.cancel()
        timer = nil
        state = .closed
        context.close(mode: .all, promise: promise)
    }
}
