import NIOConcurrencyHelpers
import NIOCore

/// Counts open ingress connections across every listener and turns away those beyond the limit.
///
/// A refused connection is closed as soon as it is accepted, before TLS: answering it would cost the handshake the
/// limit exists to avoid, and a client at the limit learns nothing it could use.
public final class IngressConnectionLimit: Sendable {
    private struct Counts {
        var open = 0
        var refused = 0
    }

    /// The most connections open at once.
    public let maximum: Int
    private let counts = NIOLockedValueBox(Counts())

    /// Makes a limit of `maximum` open connections.
    public init(maximum: Int) { self.maximum = maximum }

    /// Connections open now.
    public var open: Int { counts.withLockedValue { $0.open } }

    /// Connections turned away since start.
    public var refused: Int { counts.withLockedValue { $0.refused } }

    /// Takes a place for `channel`, given back when it closes; false when the gateway is full.
    func admit(_ channel: any Channel) -> Bool {
        let admitted = counts.withLockedValue { counts -> Bool in
            guard counts.open < maximum else {
                counts.refused += 1
                return false
            }
            counts.open += 1
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in self.counts.withLockedValue { $0.open -= 1 } }
        }
        return admitted
    }
}

/// The child-channel initializer's failure for a connection beyond the limit; NIO closes the connection.
struct IngressConnectionLimitReached: Error {}
