@testable import GatewayProxy
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

/// The coalescer on its own, in an `EmbeddedChannel`: which frames leave for which writes.
@Suite("HTTP/2 END_STREAM coalescing")
struct HTTP2EndStreamCoalescerTests {
    let headers = HPACKHeaders([(":status", "200"), ("content-length", "2")])

    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2EndStreamCoalescer())
        return channel
    }

    func data(_ text: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
    }

    /// The frames written so far, as `HEADERS`/`DATA:text` with `+END` when they end the stream.
    func sent(_ channel: EmbeddedChannel) throws -> [String] {
        var frames: [String] = []
        while let payload = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) {
            switch payload {
            case .headers(let headers): frames.append("HEADERS" + (headers.endStream ? "+END" : ""))
            case .data(let data):
                guard case .byteBuffer(let buffer) = data.data else { frames.append("DATA:file"); continue }
                frames.append("DATA:\(String(buffer: buffer))" + (data.endStream ? "+END" : ""))
            default: frames.append("other")
            }
        }
        return frames
    }

    @Test("head, body and a bare end leave as HEADERS and one DATA that ends the stream")
    func bodyCarriesTheEnd() throws {
        let channel = try channel()
        channel.write(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
        channel.write(data("ok"), promise: nil)
        channel.write(data("", end: true), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["HEADERS", "DATA:ok+END"])
        _ = try channel.finish()
    }

    @Test("an answer without a body ends on its HEADERS")
    func headersCarryTheEnd() throws {
        let channel = try channel()
        channel.write(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
        channel.write(data("", end: true), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["HEADERS+END"])
        _ = try channel.finish()
    }

    @Test("a flush sends what is held, so a streamed body is not delayed; trailers end the stream themselves")
    func flushAndTrailers() throws {
        let channel = try channel()
        channel.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
        #expect(try sent(channel) == ["HEADERS"])
        channel.writeAndFlush(data("a"), promise: nil)
        #expect(try sent(channel) == ["DATA:a"])
        channel.write(data("b"), promise: nil)
        channel.write(HTTP2Frame.FramePayload.headers(.init(headers: ["trailer": "x"], endStream: true)), promise: nil)
        channel.flush()
        #expect(try sent(channel) == ["DATA:b", "HEADERS+END"])
        _ = try channel.finish()
    }

    @Test("both writes' promises succeed when their frames are merged")
    func promises() throws {
        let channel = try channel()
        let first = channel.eventLoop.makePromise(of: Void.self)
        let second = channel.eventLoop.makePromise(of: Void.self)
        channel.write(data("ok"), promise: first)
        channel.write(data("", end: true), promise: second)
        channel.flush()
        try first.futureResult.wait()
        try second.futureResult.wait()
        #expect(try sent(channel) == ["DATA:ok+END"])
        _ = try channel.finish()
    }
}
