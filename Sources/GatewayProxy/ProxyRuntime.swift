import Foundation
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Ingress limits, Klarna's own by default.
public struct IngressLimits: Sendable {
    /// Largest request body.
    public var maxBodyBytes: Int
    /// Largest single header (name + value).
    public var maxHeaderBytes: Int
    /// Largest header block.
    public var maxHeadersTotalBytes: Int
    /// Largest response held back until its outcome record is written; larger answers stream.
    public var maxHeldResponseBytes: Int
    /// Time a new connection has to finish TLS and send its first complete request head.
    public var headerReadTimeout: TimeAmount
    /// Time a keep-alive connection may sit between requests (and a stalled writer may refuse to read its answer).
    public var idleTimeout: TimeAmount
    /// Calls served at once; beyond it a fast 503 `GATEWAY_OVERLOADED`.
    public var maxInFlightRequests: Int
    /// Open ingress connections across every listener; further ones are closed as soon as they are accepted.
    public var maxConnections: Int

    /// Makes limits; the defaults are Klarna's (1 MB body, 6 KB header, 20 KB headers) and a 4 MB hold, a 10 s
    /// head deadline, a 75 s idle timeout (above Klarna's 59 s, so a caller's keep-alive outlives a slow answer),
    /// 512 calls in flight and 10,000 connections.
    public init(
        maxBodyBytes: Int = 1_048_576, maxHeaderBytes: Int = 6144, maxHeadersTotalBytes: Int = 20480, maxHeldResponseBytes: Int = 4_194_304,
        headerReadTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(75), maxInFlightRequests: Int = 512,
        maxConnections: Int = 10_000
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeadersTotalBytes = maxHeadersTotalBytes
        self.maxHeldResponseBytes = maxHeldResponseBytes
        self.headerReadTimeout = headerReadTimeout
        self.idleTimeout = idleTimeout
        self.maxInFlightRequests = maxInFlightRequests
        self.maxConnections = maxConnections
    }
}

/// What every request handler shares: the snapshot, the pools, limits, the journal, the logger.
public final class ProxyRuntime: Sendable {
    /// The configuration in force.
    public let snapshots: SnapshotHolder
    /// Upstream connection pools, one per event loop.
    let pools: UpstreamPools
    /// The calls' deadlines, one heap and one timer per event loop; built once, each used only on its loop.
    private let callDeadlines: PerEventLoop<CallDeadlines>
    /// Token answers, breakers found and metrics series made, one memo per event loop (`LoopMemo`).
    let loopMemos: LoopMemos
    /// Ingress limits.
    public let limits: IngressLimits
    /// Timeouts, retries, budget, breaker and idempotency keys toward Klarna.
    public let resilience: ResiliencePolicy
    /// Per-host circuit breakers.
    public let breakers: BreakerBoard
    /// The retry budget shared by every event loop.
    let retryBudget: SharedRetryBudget
    let resilienceMetrics = ResilienceMetrics()
    /// Calls in flight.
    let inFlight: AdmissionGate
    /// Connections ended before any call, by reason.
    public let connectionRefusals = ConnectionRefusals()
    /// A graceful stop has begun: connections set up from now on are told so as they are configured.
    private let quiescing = Atomic<Bool>(false)

    /// Whether a graceful stop has begun.
    var isQuiescing: Bool { quiescing.load(ordering: .relaxed) }

    /// Marks the start of a graceful stop, before the connections open now are told.
    func beginQuiescing() { quiescing.store(true, ordering: .relaxed) }
    /// Where calls are reported.
    public let journal: any CallJournal
    /// Whether calls hash their bodies (`CallJournal.recordsBodyHashes`), read once instead of per call.
    let hashesBodies: Bool
    /// Whether calls wait for a durable journal (`CallJournal.isDurable`): only then do its commits get spans.
    let journalIsDurable: Bool
    /// Rate-limit state shared by every event loop: local, or leased from a shared ledger in cluster mode.
    public let rateLimiter: RateLimiter
    /// The data plane's logger.
    public let logger: Logger
    /// Request counts and latencies (no-op unless a metrics factory was given).
    public let metrics: GatewayMetrics
    let pipeline = RequestPipeline()
    /// Tracing's tracer and sampling; nil when tracing is off.
    public let tracing: CallTracing?
    /// The client identities the last drain kept, so a reload that changes none starts no drain.
    private let retainedIdentities = NIOLockedValueBox<Set<String>?>(nil)

    /// Calls in flight now (for `/readyz`).
    public var callsInFlight: Int { inFlight.count }

    /// Makes the runtime over an event loop group.
    public init(
        snapshots: SnapshotHolder, group: any EventLoopGroup, upstreamCAPEM: String?, limits: IngressLimits,
        resilience: ResiliencePolicy, maxIdlePerKey: Int, journal: any CallJournal, logger: Logger,
        metrics: GatewayMetrics = .disabled, cluster: ClusterLimits.Settings? = nil, tracing: CallTracing? = nil
    ) throws {
        self.metrics = metrics
        self.tracing = tracing
        self.rateLimiter = RateLimiter(cluster: cluster)
        self.snapshots = snapshots
        self.pools = UpstreamPools(
            group: group, contexts: try UpstreamTLSContexts(caPEM: upstreamCAPEM),
            settings: .init(maxIdlePerKey: maxIdlePerKey, idleTimeout: .seconds(55))
        )
        self.callDeadlines = PerEventLoop(group) { CallDeadlines(eventLoop: $0) }
        self.loopMemos = LoopMemos(group: group)
        self.limits = limits
        self.resilience = resilience
        self.breakers = BreakerBoard(settings: resilience.breaker)
        self.retryBudget = SharedRetryBudget(settings: resilience.budget)
        self.inFlight = AdmissionGate(limit: limits.maxInFlightRequests)
        self.journal = journal
        self.hashesBodies = journal.recordsBodyHashes
        self.journalIsDurable = journal.isDurable
        self.logger = logger
    }

    /// Installs a reloaded snapshot: calls that start from now on read it, and no loop keeps the one replaced.
    /// Returns once every loop has let go of it, so that, unless a call still holds it, the replaced snapshot is
    /// freed here, off the event loops, and a memory trim after this gives its pages back.
    /// Once a graceful stop has begun the loops may be gone, and work handed to a stopped loop never runs (NIO logs
    /// it): then the loops are left alone, and their memos re-read the holder, by its generation, on their next call.
    public func install(_ snapshot: GatewaySnapshot) async {
        let replaced = snapshots.current
        snapshots.replace(with: snapshot)
        guard !isQuiescing else { return }
        await loopMemos.forgetSnapshots()
        withExtendedLifetime(replaced) {}
    }

    /// Hands the calls each loop counted to the metrics' series (before a scrape), on every loop.
    public func flushMetrics(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        loopMemos.flushMetrics(on: eventLoop)
    }

    /// The deadlines of the calls on `loop`.
    func deadlines(for loop: any EventLoop) -> CallDeadlines {
        guard let deadlines = callDeadlines[loop] else {
            preconditionFailure("channel on an event loop outside the gateway's group")
        }
        return deadlines
    }

    /// Closes upstream connections that are idle too long or present a certificate no partner uses any more.
    public func pruneUpstreamConnections() {
        let identities = Set(snapshots.current.partners.values.map(\.clientIdentity.fingerprint))
        pools.contexts.retain(only: identities)
        pools.forEach { $0.prune(keeping: identities) }
    }

    /// After a snapshot change: when the set of partner client certificates changed (a rotation), new
    /// connections already use the new certificate (pools are keyed by its fingerprint); this drains the
    /// connections still presenting an old one within `drain`.
    public func drainRetiredIdentities(drain: TimeAmount) {
        let identities = Set(snapshots.current.partners.values.map(\.clientIdentity.fingerprint))
        let changed = retainedIdentities.withLockedValue { retained in
            defer { retained = identities }
            return retained != nil && retained != identities
        }
        guard changed else { return }
        logger.notice(
            "client certificate changed: new upstream connections use the new one; draining the old ones",
            metadata: ["drain_seconds": "\(drain.nanoseconds / 1_000_000_000)"])
        pools.contexts.retain(only: identities)
        pools.forEach { $0.retire(keeping: identities, drain: drain) }
    }

    /// Open upstream connections by upstream and state, gathered from every event loop.
    public func upstreamConnectionCounts(on eventLoop: any EventLoop) -> EventLoopFuture<[UpstreamConnectionCount]> {
        pools.gather(on: eventLoop) { $0.counts() }.map { $0.flatMap { $0 } }
    }

    /// Connections closed by drains since start, by when (`idle`, `after_call`, `deadline`).
    public func upstreamDrained(on eventLoop: any EventLoop) -> EventLoopFuture<[String: Int]> {
        pools.gather(on: eventLoop) { $0.drained }.map { $0.reduce(into: [:]) { $0.merge($1, uniquingKeysWith: +) } }
    }

    /// Open upstream connections by the fingerprint of the client certificate they present.
    public func upstreamIdentities(on eventLoop: any EventLoop) -> EventLoopFuture<[String: Int]> {
        pools.gather(on: eventLoop) { $0.identities() }.map { $0.reduce(into: [:]) { $0.merge($1, uniquingKeysWith: +) } }
    }

    /// Forgets idle rate-limit keys.
    public func sweepRateLimits() {
        rateLimiter.sweep(now: Int64(NIODeadline.now().uptimeNanoseconds))
    }

    /// Closes every idle upstream connection.
    public func closeUpstreamConnections() {
        pools.forEach { $0.closeAll() }
    }
}

/// Today's date as `YYYY-MM-DD` (UTC), recomputed only when the day changes. Each event loop keeps its own (in its
/// `LoopMemo`), so reading it takes no lock; one made for another caller is used by that caller only.
final class CalendarDay {
    private var day = -1
    private var text = ""

    /// The current day.
    var today: String {
        let now = Int(time(nil))
        if now / 86_400 != day {
            day = now / 86_400
            text = UTCTime.day(epochSeconds: now)
        }
        return text
    }
}

/// The per-loop pools, found by the loop a channel runs on.
final class UpstreamPools: @unchecked Sendable {
    // Built once and never mutated, so lookups from any thread are safe; each pool is used only on its own loop.
    private let pools: PerEventLoop<UpstreamPool>
    let contexts: UpstreamTLSContexts

    init(group: any EventLoopGroup, contexts: UpstreamTLSContexts, settings: UpstreamPool.Settings) {
        pools = PerEventLoop(group) { UpstreamPool(eventLoop: $0, contexts: contexts, settings: settings) }
        self.contexts = contexts
    }

    /// The pool of `loop`.
    func pool(for loop: any EventLoop) -> UpstreamPool {
        guard let pool = pools[loop] else {
            preconditionFailure("channel on an event loop outside the gateway's group")
        }
        return pool
    }

    /// Runs `body` on each pool's loop and collects the results.
    func gather<T: Sendable>(on eventLoop: any EventLoop, _ body: @escaping @Sendable (UpstreamPool) -> T) -> EventLoopFuture<[T]> {
        pools.gather(on: eventLoop, body)
    }

    /// Runs `body` for each pool on its own loop.
    func forEach(_ body: @escaping @Sendable (UpstreamPool) -> Void) {
        pools.forEach(body)
    }
}
