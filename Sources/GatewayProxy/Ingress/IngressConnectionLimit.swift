import NIOConcurrencyHelpers
import NIOCore

/// Tracks open ingress connections across every listener: turns away those beyond the limit, and hands the open
/// ones to a graceful stop.
///
/// A refused connection is closed as soon as it is accepted, before TLS: answering it would cost the handshake the
/// limit exists to avoid, and a client at the limit learns nothing it could use.
public final class IngressConnectionLimit: Sendable {
    private struct Counts {
        var open: [ObjectIdentifier: any Channel] = [:]
        var refused = 0
    }

    /// The most connections open at once.
    public let maximum: Int
    private let counts = NIOLockedValueBox(Counts())

    /// Makes a limit of `maximum` open connections.
    public init(maximum: Int) { self.maximum = maximum }

    /// Connections open now.
    public var open: Int { counts.withLockedValue { $0.open.count } }

    /// The connections open now, for a graceful stop.
    var all: [any Channel] { counts.withLockedValue { Array($0.open.values) } }

    /// Connections turned away since start.
    public var refused: Int { counts.withLockedValue { $0.refused } }

    /// Takes a place for `channel`, given back when it closes; false when the gateway is full.
    public func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let admitted = counts.withLockedValue { counts -> Bool in
            guard counts.open.count < maximum else {
                counts.refused += 1
                return false
            }
            counts.open[id] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in self.counts.withLockedValue { $0.open[id] = nil } }
        }
        return admitted
    }
}

/// The child-channel initializer's failure for a connection beyond the limit; NIO closes the connection.
public struct IngressConnectionLimitReached: Error {
    /// Makes the failure.
    public init() {}
}
