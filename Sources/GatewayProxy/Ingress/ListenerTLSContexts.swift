import NIOConcurrencyHelpers
import NIOSSL

/// The server TLS contexts of a group of listeners, by listener name: each connection takes the context in force
/// when it arrives, so a reload makes new handshakes use new certificate files while established connections keep
/// theirs. The proxy's listeners keep one group, the webhook listeners another and the admin listener a third;
/// `reload` installs new contexts in every group or in none.
public final class ListenerTLSContexts: Sendable {
    private let holders = NIOLockedValueBox<[String: TLSContextHolder]>([:])
    /// Whether ALPN offers HTTP/2 to listeners that ask for it (the webhook listeners speak HTTP/1.1 only).
    private let offersHTTP2: Bool

    /// An empty group; `offersHTTP2` false keeps every listener of it on HTTP/1.1.
    public init(offersHTTP2: Bool) { self.offersHTTP2 = offersHTTP2 }

    /// Builds `listener`'s first context and keeps its holder for reloads; nil for a listener without TLS.
    package func add(_ listener: ListenerSpec) throws -> TLSContextHolder? {
        guard let tls = listener.tls else { return nil }
        let holder = TLSContextHolder(try tls.makeContext(http2: offersHTTP2 && listener.http2))
        holders.withLockedValue { $0[listener.name] = holder }
        return holder
    }

    /// The holder of `name`'s context, for a server that binds outside this module (the admin listener).
    package func holder(named name: String) -> TLSContextHolder? { holders.withLockedValue { $0[name] } }

    /// Builds new contexts for the listeners of `groups` from `listeners` and installs them only if every one
    /// builds. Listeners no group holds (not bound, or bound without TLS) are ignored: adding or removing TLS needs
    /// a restart.
    public static func reload(_ groups: [ListenerTLSContexts], from listeners: [ListenerSpec]) throws {
        var built: [(TLSContextHolder, NIOSSLContext)] = []
        for group in groups {
            let holders = group.holders.withLockedValue { $0 }
            for listener in listeners {
                guard let holder = holders[listener.name], let tls = listener.tls else { continue }
                built.append((holder, try tls.makeContext(http2: group.offersHTTP2 && listener.http2)))
            }
        }
        for (holder, context) in built { holder.replace(with: context) }
    }
}

/// The server TLS context new connections of one listener get.
package final class TLSContextHolder: Sendable {
    private let box: NIOLockedValueBox<NIOSSLContext>

    init(_ context: NIOSSLContext) { box = NIOLockedValueBox(context) }

    /// The context in force.
    package var current: NIOSSLContext { box.withLockedValue { $0 } }

    func replace(with context: NIOSSLContext) { box.withLockedValue { $0 = context } }
}
