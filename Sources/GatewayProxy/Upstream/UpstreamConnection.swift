import NIOCore
import NIOHTTP1
import NIOTLS

/// Receives one exchange's response from an upstream connection.
protocol UpstreamExchangeDelegate: AnyObject {
    /// A response part arrived.
    func upstreamReceived(_ part: HTTPClientResponsePart)
    /// The connection failed or closed before the response ended.
    func upstreamFailed(_ error: any Error)
    /// The connection's outbound buffer crossed a water mark: the caller's side reads only while it can be written.
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// The last handler of an upstream channel: hands response parts to whichever exchange holds the connection.
final class UpstreamConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// The exchange using the connection; nil while it is idle in the pool.
    weak var delegate: (any UpstreamExchangeDelegate)?
    /// Called once when the channel goes inactive, so the pool forgets it.
    var onClose: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let delegate {
            delegate.upstreamReceived(part)
        } else {
            // Bytes on an idle connection mean the peer is confused; it cannot be reused.
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let delegate = self.delegate
        self.delegate = nil
        onClose?()
        onClose = nil
        delegate?.upstreamFailed(UpstreamError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamFailed(error)
        context.close(promise: nil)
    }
}

/// An open upstream connection, owned by its event loop's pool or by one exchange at a time.
///
/// `@unchecked Sendable` only so futures can carry it between pool and handler on the same event loop.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: UpstreamConnectionHandler
    let key: UpstreamPool.Key
    /// When it was last returned to the pool, for idle expiry.
    var idleSince: NIODeadline = .now()

    init(channel: any Channel, handler: UpstreamConnectionHandler, key: UpstreamPool.Key) {
        self.channel = channel
        self.handler = handler
        self.key = key
    }
}

/// Why an upstream exchange failed.
enum UpstreamError: Error {
    /// The connection closed before the response ended.
    case connectionClosed
    /// The TLS handshake did not finish within the configured time.
    case tlsHandshakeTimeout
}

/// Completes `promise` when the upstream TLS handshake has finished, or fails it with the handshake's error, so
/// the pool hands out only connections a request can be written to.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let promise: EventLoopPromise<Void>
    private var done = false

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    /// Completes the promise once; later outcomes (a close after success) are not the handshake's.
    func complete(_ result: Result<Void, any Error>) {
        guard !done else { return }
        done = true
        promise.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { complete(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        complete(.failure(error))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        complete(.failure(UpstreamError.connectionClosed))
        context.fireChannelInactive()
    }

    /// A channel whose connect failed is torn down without ever going active.
    func handlerRemoved(context: ChannelHandlerContext) {
        complete(.failure(UpstreamError.connectionClosed))
    }
}
