import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Keep-alive connections to Klarna for one event loop, keyed by (upstream authority, client certificate).
///
/// One pool per loop, used only on that loop: the ingress channel and its upstream channel share the loop, so
/// relaying a part is a direct call with no locks or hops. Keying by certificate fingerprint keeps a rotated
/// certificate's calls on new connections while calls in flight finish on the old ones.
///
/// `@unchecked Sendable` because it is confined to `eventLoop`: every method checks it runs there.
final class UpstreamPool: @unchecked Sendable {
    /// What makes two upstream connections interchangeable.
    struct Key: Hashable {
        let host: String
        let port: Int
        let identity: String
    }

    /// Pool settings.
    struct Settings {
        var maxIdlePerKey: Int
        var idleTimeout: TimeAmount
    }

    let eventLoop: any EventLoop
    let contexts: UpstreamTLSContexts
    let settings: Settings
    /// Idle connections by key, each key's in a list object: taking one is a dictionary read and an array pop
    /// on the list, where mutating the array inside the dictionary went through two heap-allocated accessor frames.
    private var idle: [Key: IdleList] = [:]
    /// Every open connection, idle or busy, so that a drain can find the busy ones too.
    private var open: [ObjectIdentifier: UpstreamConnection] = [:]
    /// Client identities in force; connections presenting any other are draining. Nil before the first drain.
    private var current: Set<String>?
    private var drainDeadline: Scheduled<Void>?
    /// Connections closed because they presented a retired identity, by when: `idle` (at the rotation),
    /// `after_call` (when their exchange ended), `deadline` (still open when the drain time ran out).
    private(set) var drained: [String: Int] = [:]

    init(eventLoop: any EventLoop, contexts: UpstreamTLSContexts, settings: Settings) {
        self.eventLoop = eventLoop
        self.contexts = contexts
        self.settings = settings
    }

    /// A new connection whose TLS handshake has completed, so a failure here always means nothing of the request
    /// was sent; for when `takeIdle` had none.
    /// `tcpConnected` is called on this loop when the TCP connection is up, before the TLS handshake (a traced
    /// attempt's event; nil costs nothing).
    func connect(
        endpoint: UpstreamEndpoint, identity: ClientIdentity, connectTimeout: TimeAmount, handshakeTimeout: TimeAmount,
        tcpConnected: (@Sendable () -> Void)? = nil
    ) -> EventLoopFuture<UpstreamConnection> {
        eventLoop.preconditionInEventLoop()
        let key = Key(host: endpoint.host, port: endpoint.port, identity: identity.fingerprint)
        return connect(key: key, identity: identity, connectTimeout: connectTimeout, handshakeTimeout: handshakeTimeout, tcpConnected: tcpConnected)
    }

    /// An idle open connection to `endpoint` with `identity`, if the pool has one: the common case, taken without
    /// a future.
    func takeIdle(endpoint: UpstreamEndpoint, identity: ClientIdentity) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        let key = Key(host: endpoint.host, port: endpoint.port, identity: identity.fingerprint)
        guard let list = idle[key] else { return nil }
        while let connection = list.connections.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// Returns a connection after a complete exchange; a connection that cannot be reused is closed.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        let draining = current.map { !$0.contains(connection.key.identity) } ?? false
        if draining && connection.channel.isActive { drained["after_call", default: 0] += 1 }
        let list = idle[connection.key] ?? IdleList()
        guard reusable, !draining, connection.channel.isActive, list.connections.count < settings.maxIdlePerKey else {
            connection.channel.close(promise: nil)
            return
        }
        connection.idleSince = .now()
        if list.connections.isEmpty { idle[connection.key] = list }
        list.connections.append(connection)
    }

    /// Closes idle connections older than the idle timeout or presenting identities no longer configured.
    func prune(keeping identities: Set<String>?) {
        eventLoop.preconditionInEventLoop()
        let oldest = NIODeadline.now() - settings.idleTimeout
        for (key, list) in idle {
            let connections = list.connections
            let keep = identities.map { $0.contains(key.identity) } ?? true
            let (stay, go) = connections.reduce(into: ([UpstreamConnection](), [UpstreamConnection]())) { result, connection in
                if keep && connection.idleSince > oldest && connection.channel.isActive {
                    result.0.append(connection)
                } else {
                    result.1.append(connection)
                }
            }
            list.connections = stay
            if stay.isEmpty { idle[key] = nil }
            for connection in go { connection.channel.close(promise: nil) }
        }
    }

    /// Starts draining connections that present an identity not in `identities` (a rotated client certificate):
    /// idle ones close now, busy ones when their exchange ends (`release`), and whatever is left at `drain`'s
    /// end is closed then, so no connection keeps the old certificate beyond that bound.
    func retire(keeping identities: Set<String>, drain: TimeAmount) {
        eventLoop.preconditionInEventLoop()
        current = identities
        drained["idle", default: 0] += idle.filter { !identities.contains($0.key.identity) }.values.flatMap(\.connections).filter(\.channel.isActive).count
        prune(keeping: identities)
        drainDeadline?.cancel()
        drainDeadline = eventLoop.assumeIsolated().scheduleTask(in: drain) {
            self.drainDeadline = nil
            guard let current = self.current else { return }
            for connection in self.open.values where !current.contains(connection.key.identity) {
                self.drained["deadline", default: 0] += 1
                connection.channel.close(promise: nil)
            }
        }
    }

    /// Open connections by upstream and state, for metrics.
    func counts() -> [UpstreamConnectionCount] {
        eventLoop.preconditionInEventLoop()
        let idleIDs = Set(idle.values.flatMap(\.connections).map { ObjectIdentifier($0) })
        var counts: [UpstreamConnectionCount: Int] = [:]
        for (id, connection) in open {
            let draining = current.map { !$0.contains(connection.key.identity) } ?? false
            let state = draining ? "draining" : idleIDs.contains(id) ? "idle" : "busy"
            counts[UpstreamConnectionCount(upstream: "\(connection.key.host):\(connection.key.port)", state: state, count: 0), default: 0] += 1
        }
        return counts.map { entry, count in
            var entry = entry
            entry.count = count
            return entry
        }
    }

    /// Open connections by the fingerprint of the client certificate they present.
    func identities() -> [String: Int] {
        eventLoop.preconditionInEventLoop()
        return open.values.reduce(into: [:]) { $0[$1.key.identity, default: 0] += 1 }
    }

    /// Closes every idle connection (shutdown).
    func closeAll() {
        for connection in idle.values.flatMap(\.connections) { connection.channel.close(promise: nil) }
        idle = [:]
    }

    private func connect(
        key: Key, identity: ClientIdentity, connectTimeout: TimeAmount, handshakeTimeout: TimeAmount, tcpConnected: (@Sendable () -> Void)?
    ) -> EventLoopFuture<UpstreamConnection> {
        let context: NIOSSLContext
        do {
            context = try contexts.context(for: identity)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let host = key.host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: TLSServerName.forHost(host))
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(promise: channel.eventLoop.makePromise()))
                    // The request head is the caller's headers as llhttp or HPACK validated them on the way in, plus
                    // values the gateway made or checked when stored (API keys are printable ASCII): validating the
                    // head again on the way out cost 1% of a call.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnectionHandler())
                }
            }
        return bootstrap.connect(host: host, port: key.port).flatMap { (channel: any Channel) -> EventLoopFuture<any Channel> in
            tcpConnected?()
            // The handshake runs from channel activation; wait for it, within its own limit.
            let waiter: TLSHandshakeWaiter
            do {
                waiter = try channel.pipeline.syncOperations.handler(type: TLSHandshakeWaiter.self)
            } catch {
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(error) as EventLoopFuture<any Channel>
            }
            let timer = channel.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) {
                waiter.complete(.failure(UpstreamError.tlsHandshakeTimeout))
                channel.close(promise: nil)
            }
            return waiter.promise.futureResult.always { _ in timer.cancel() }.map { () -> any Channel in channel }
        }.flatMapThrowing { (channel: any Channel) -> UpstreamConnection in
            let handler = try channel.pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self)
            let connection = UpstreamConnection(channel: channel, handler: handler, key: key)
            let id = ObjectIdentifier(connection)
            self.open[id] = connection
            // The close future fires even for a channel that closed before this point, unlike channelInactive.
            channel.closeFuture.assumeIsolated().whenComplete { _ in self.open[id] = nil }
            handler.onClose = { [weak self, weak connection] in
                guard let self, let connection else { return }
                self.idle[key]?.connections.removeAll { $0 === connection }
            }
            return connection
        }
    }
}

/// One key's idle connections, most recently returned last.
private final class IdleList {
    var connections: [UpstreamConnection] = []
}
