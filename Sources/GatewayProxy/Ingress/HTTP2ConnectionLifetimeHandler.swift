import NIOCore
import NIOHTTP2

/// Ends one HTTP/2 connection when it is done: on a graceful stop it sends GOAWAY and closes the connection once
/// its open streams are done (at once when there are none); with no open stream for the idle timeout
/// (`limits.idle_timeout_ms`, the HTTP/1 keep-alive idle timeout) it sends GOAWAY `NO_ERROR` and closes it.
///
/// Streams are counted from the stream initializer and each stream's request handler going inactive, which needs
/// no cooperation from the HTTP/2 handler's events. The idle timer is not moved per stream: it is armed when the connection
/// falls idle with no timer pending, and when it fires early (streams came and went meanwhile) it re-arms for the
/// idle period then in force, so a busy connection costs about one timer per idle timeout.
final class HTTP2ConnectionLifetimeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let idleTimeout: TimeAmount
    private var openStreams = 0
    private var quiescing = false
    private var context: ChannelHandlerContext?
    /// Since when no stream has been open; nil while one is.
    private var idleSince: NIODeadline? = .now()
    private var idleTimer: Scheduled<Void>?

    init(idleTimeout: TimeAmount) { self.idleTimeout = idleTimeout }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if openStreams == 0 {
            idleSince = .now()
            armIdleTimer(at: .now() + idleTimeout)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
    }

    /// A stream opened (its handlers are in place). Runs on the connection's loop (streams share it).
    func streamOpened() {
        openStreams += 1
        idleSince = nil
    }

    /// A stream opened with `streamOpened` closed: its request handler tells, from its `channelInactive`, which
    /// costs nothing where a callback on each stream's close future cost two allocations per stream.
    func streamClosed() {
        openStreams -= 1
        if openStreams <= 0 {
            idleSince = .now()
            if idleTimer == nil { armIdleTimer(at: .now() + idleTimeout) }
        }
        closeIfDone()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent && !quiescing {
            goAway(context: context)
            closeIfDone()
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func goAway(context: ChannelHandlerContext) {
        quiescing = true
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    private func armIdleTimer(at deadline: NIODeadline) {
        guard let context else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { self.idleTimerFired() }
    }

    private func idleTimerFired() {
        idleTimer = nil
        // A stream is open: the timer is armed again when the connection next falls idle.
        guard let idleSince, let context, !quiescing else { return }
        let due = idleSince + idleTimeout
        if NIODeadline.now() < due {
            armIdleTimer(at: due)
            return
        }
        goAway(context: context)
        closeIfDone()
    }

    private func closeIfDone() {
        guard quiescing, openStreams <= 0, let context else { return }
        // A tick later, so the last stream's final frames are flushed before the connection closes.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value.close(promise: nil) }
    }
}
