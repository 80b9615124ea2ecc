import Crypto
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Reads what a TLS server presents, over a real handshake: which certificate a listener serves now.
public enum TLSProbe {
    /// Why a probe learned nothing.
    public struct NoCertificate: Error, CustomStringConvertible {
        /// A readable reason.
        public var description: String { "the handshake completed without a server certificate" }
    }

    /// The lowercase hex SHA-256 of the DER of the leaf certificate the server on `port` presents to a client
    /// configured as `tls` (which must trust it: a failed handshake throws).
    public static func serverCertificateFingerprint(host: String = "127.0.0.1", port: Int, tls: TestTLS) async throws -> String {
        let context = try tls.makeContext()
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: [UInt8].self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try tls.addHandler(to: channel, context: context)
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: promise))
                }
            }
            .connect(host: host, port: port).get()
        defer { channel.close(promise: nil) }
        let der = try await promise.futureResult.get()
        return SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
    }
}

/// Completes its promise with the peer's leaf certificate once the handshake is done, or fails it with the
/// handshake's error.
private final class HandshakeWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<[UInt8]>

    init(promise: EventLoopPromise<[UInt8]>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            do {
                guard let certificate = try context.pipeline.syncOperations.nioSSL_peerCertificate() else { throw TLSProbe.NoCertificate() }
                promise.succeed(try certificate.toDERBytes())
            } catch {
                promise.fail(error)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }
}
