import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP relay on loopback in front of a server (PostgreSQL in the scale-out tests), which a test can cut and
/// restore: cut, it closes every relayed connection and every new one at once, as an unreachable server looks to
/// a client whose connections were reset; silenced, it keeps every connection open and passes nothing on, as a
/// server that stops answering looks; with the answers of its open connections muted, it passes on what those
/// clients send and drops what the server answers them; restored, it relays again. The server itself is never touched, so tests
/// sharing it are not disturbed.
public final class TCPRelay: Sendable {
    /// The relay's port on 127.0.0.1.
    public let port: Int
    private let server: any Channel
    private let state: NIOLockedValueBox<RelayState>

    struct RelayState {
        var cut = false
        var silent = false
        /// The channels whose reads are dropped by `muteAnswers()`.
        var muted: Set<ObjectIdentifier> = []
        var open: [ObjectIdentifier: any Channel] = [:]
    }

    private init(port: Int, server: any Channel, state: NIOLockedValueBox<RelayState>) {
        self.port = port
        self.server = server
        self.state = state
    }

    /// Starts relaying connections on a free loopback port to `host:targetPort`.
    public static func start(to host: String, port targetPort: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> TCPRelay {
        let state = NIOLockedValueBox(RelayState())
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Nothing is read from the caller until the server side is connected.
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                if state.withLockedValue({ $0.cut }) { return inbound.eventLoop.makeFailedFuture(RelayCut()) }
                let pair = RelayPair()
                pair.inbound = inbound
                return inbound.eventLoop.makeCompletedFuture {
                    try inbound.pipeline.syncOperations.addHandler(RelayHandler(pair: pair, inboundSide: true, state: state))
                }.flatMap {
                    ClientBootstrap(group: inbound.eventLoop)
                        .channelInitializer { outbound in
                            outbound.eventLoop.makeCompletedFuture {
                                try outbound.pipeline.syncOperations.addHandler(RelayHandler(pair: pair, inboundSide: false, state: state))
                            }
                        }
                        .connect(host: host, port: targetPort)
                }.flatMap { outbound in
                    pair.outbound = outbound
                    state.withLockedValue {
                        $0.open[ObjectIdentifier(inbound)] = inbound
                        $0.open[ObjectIdentifier(outbound)] = outbound
                    }
                    let forget: @Sendable (any Channel) -> Void = { channel in
                        state.withLockedValue {
                            $0.open.removeValue(forKey: ObjectIdentifier(channel))
                            $0.muted.remove(ObjectIdentifier(channel))
                        }
                    }
                    inbound.closeFuture.whenComplete { _ in forget(inbound) }
                    outbound.closeFuture.whenComplete { _ in forget(outbound) }
                    return inbound.setOption(.autoRead, value: true)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TCPRelay(port: server.localAddress?.port ?? 0, server: server, state: state)
    }

    /// Cuts the relay: open connections are closed, new ones closed as they arrive, until `restore()`.
    public func cut() async {
        let open = state.withLockedValue { state in
            state.cut = true
            return Array(state.open.values)
        }
        for channel in open { try? await channel.close() }
    }

    /// Silences the relay: connections stay open and what either end sends is dropped, until `restore()`.
    public func silence() {
        state.withLockedValue { $0.silent = true }
    }

    /// Mutes the server's answers on the connections open now: what their clients send still reaches it (and
    /// commits), what it answers them is dropped, as an answer lost on the way looks; connections made later relay
    /// both ways, as a reconnect after a lost answer finds the server.
    public func muteAnswers() {
        state.withLockedValue { $0.muted = Set($0.open.keys) }
    }

    /// Relays again.
    public func restore() {
        state.withLockedValue {
            $0.cut = false
            $0.silent = false
            $0.muted = []
        }
    }

    /// Stops listening and closes every relayed connection.
    public func close() async {
        await cut()
        try? await server.close()
    }
}

/// A refused connection while the relay is cut.
struct RelayCut: Error {}

/// Both ends of one relayed connection; both channels run on the same event loop, the only place this is used.
final class RelayPair: @unchecked Sendable {
    var inbound: (any Channel)?
    var outbound: (any Channel)?
}

/// Writes what one end reads to the other, and closes the other when one end closes.
final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let pair: RelayPair
    let inboundSide: Bool
    let state: NIOLockedValueBox<TCPRelay.RelayState>

    init(pair: RelayPair, inboundSide: Bool, state: NIOLockedValueBox<TCPRelay.RelayState>) {
        self.pair = pair
        self.inboundSide = inboundSide
        self.state = state
    }

    private var partner: (any Channel)? { inboundSide ? pair.outbound : pair.inbound }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let channel = ObjectIdentifier(context.channel)
        guard !state.withLockedValue({ $0.silent || (!inboundSide && $0.muted.contains(channel)) }) else { return }
        partner?.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
