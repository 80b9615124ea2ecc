import GatewayCore
@testable import GatewayProxy
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// While a connection's one request is answered, the head-timeout handler asks for the next read itself, below the
/// pipelining handler that would hold it: the socket stays registered in epoll instead of leaving and rejoining it
/// for every request. A pipelined second request, or a graceful stop, gives the hold back to the pipelining handler.
@Suite("Ingress reads while a request is answered, in EmbeddedChannel")
struct IngressReadHoldTests {
    /// Counts the reads that reach the channel (the socket's registration for reading).
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    final class Rig {
        let calls: CallHandlerTests.Rig
        let counter = ReadCounter()
        let channel: EmbeddedChannel

        init() throws {
            calls = try CallHandlerTests.Rig()
            channel = EmbeddedChannel(loop: calls.loop)
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(counter)
            try sync.addHandler(IngressHeadTimeoutHandler(runtime: calls.runtime))
            try sync.addHandler(HTTPServerPipelineHandler())
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_001)).wait()
        }

        /// One read burst as NIO delivers it: the parts, read-complete, then the read autoRead asks for.
        /// (`writeInbound` would end every part with a read-complete of its own.)
        func burst(_ requests: Int) throws {
            for _ in 0..<requests {
                deliver(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x")))
                deliver(.end(nil))
            }
            readComplete()
        }

        func deliver(_ part: HTTPServerRequestPart) { channel.pipeline.syncOperations.fireChannelRead(NIOAny(part)) }

        func readComplete() {
            channel.pipeline.syncOperations.fireChannelReadComplete()
            channel.read()
        }

        func answer() throws {
            try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "0"])))
            try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        }
    }

    @Test func oneRequestInFlightKeepsTheSocketReading() throws {
        let rig = try Rig()
        let before = rig.counter.reads
        try rig.burst(1)
        // The pipelining handler holds autoRead's read; the one asked for below it got through.
        #expect(rig.counter.reads == before + 1)
        // Answered, the connection is idle: autoRead's read goes through as it always did.
        try rig.answer()
        let idle = rig.counter.reads
        rig.readComplete()
        #expect(rig.counter.reads == idle + 1)
    }

    @Test func aPipelinedSecondRequestGivesTheHoldBack() throws {
        let rig = try Rig()
        try rig.burst(1)
        let reading = rig.counter.reads
        // A second request arrives while the first is answered: no read is asked for, the hold applies.
        try rig.burst(1)
        #expect(rig.counter.reads == reading)
    }

    @Test func aGracefulStopGivesTheHoldBack() throws {
        let rig = try Rig()
        rig.deliver(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x")))
        rig.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        rig.deliver(.end(nil))
        let before = rig.counter.reads
        rig.readComplete()
        #expect(rig.counter.reads == before)
    }
}
