import NIOCore
import NIOHTTP2

/// Puts END_STREAM on a stream's last HEADERS or DATA frame instead of on an empty DATA frame after it.
///
/// NIO's HTTP/1-to-HTTP/2 codec turns an answer's `.end` into an empty DATA frame of its own. curl (7.88, nghttp2)
/// treats the answer as complete once it has the body and resets a stream that has not yet seen END_STREAM, so
/// every call it made cost a RST_STREAM, and the rapid-reset limit (200 in 30 s) then sent it GOAWAY after 200
/// calls. Holding the last frame until the next write or the flush lets the end ride on it, as nginx sends it.
final class HTTP2EndStreamCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var held: HTTP2Frame.FramePayload?
    private var heldPromise: EventLoopPromise<Void>?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = unwrapOutboundIn(data)
        if let held, Self.isBareEnd(payload), let merged = Self.ending(held) {
            self.held = nil
            let first = heldPromise
            heldPromise = nil
            context.write(wrapOutboundOut(merged), promise: Self.combine(first, promise))
            return
        }
        writeHeld(context: context)
        if Self.ending(payload) != nil {
            held = payload
            heldPromise = promise
        } else {
            context.write(data, promise: promise)
        }
    }

    func flush(context: ChannelHandlerContext) {
        writeHeld(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        writeHeld(context: context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        writeHeld(context: context)
    }

    private func writeHeld(context: ChannelHandlerContext) {
        guard let held else { return }
        self.held = nil
        let promise = heldPromise
        heldPromise = nil
        context.write(wrapOutboundOut(held), promise: promise)
    }

    /// An empty DATA frame that only ends the stream: what the codec writes for `.end(nil)`.
    private static func isBareEnd(_ payload: HTTP2Frame.FramePayload) -> Bool {
        guard case .data(let data) = payload, data.endStream, data.paddingBytes == nil else { return false }
        return data.data.readableBytes == 0
    }

    /// `payload` with END_STREAM set, when it is a HEADERS or DATA frame that does not end the stream yet.
    private static func ending(_ payload: HTTP2Frame.FramePayload) -> HTTP2Frame.FramePayload? {
        switch payload {
        case .headers(var headers) where !headers.endStream:
            headers.endStream = true
            return .headers(headers)
        case .data(var data) where !data.endStream:
            data.endStream = true
            return .data(data)
        default:
            return nil
        }
    }

    private static func combine(_ first: EventLoopPromise<Void>?, _ second: EventLoopPromise<Void>?) -> EventLoopPromise<Void>? {
        switch (first, second) {
        case (nil, nil): return nil
        case (let only?, nil), (nil, let only?): return only
        case (let first?, let second?):
            first.futureResult.cascade(to: second)
            return first
        }
    }
}
