import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Running totals of the ledger client's work, for metrics.
public struct QuotaLeaseCounters: Sendable, Equatable {
    /// Acquires the ledger answered with at least one admission.
    public var leasesGranted = 0
    /// Acquires the ledger answered with none (the key's budget is spent until its next admission).
    public var leasesEmpty = 0
    /// Acquires, releases and heartbeats that failed or timed out.
    public var failures = 0
    /// Admissions granted in all.
    public var admissionsGranted = 0
    /// Unspent admissions given back in all.
    public var admissionsReturned = 0
    /// Times the instance entered fallback (its share of each limit).
    public var fallbacks = 0

    /// Zero.
    public init() {}
}

/// The ledger client of cluster mode: performs the acquires and releases the rate limiter's lease book asks for,
/// off the event loops and never on a call's path, each within a timeout; on a failure it puts the limiter into
/// fallback (each limit enforced as this instance's share) and wakes parked calls; it heartbeats, which both
/// counts the instances seen recently and probes the ledger, and leaves fallback when the ledger answers again.
public final class QuotaLeaseDriver: Sendable {
    /// Tuning.
    public struct Settings: Sendable, Equatable {
        /// This instance's id in the heartbeat table (`node_id`).
        public var nodeID: String
        /// How often the instance records that it is alive.
        public var heartbeatInterval: Duration
        /// Instances seen within this window count for the fallback share.
        public var instanceWindow: Duration
        /// The longest a ledger request may take before it counts as failed.
        public var timeout: Duration
        /// How often expired leases are given back.
        public var expiryInterval: Duration

        /// Makes settings.
        public init(
            nodeID: String, heartbeatInterval: Duration = .seconds(1), instanceWindow: Duration = .seconds(10),
            timeout: Duration = .milliseconds(500), expiryInterval: Duration = .milliseconds(250)
        ) {
            self.nodeID = nodeID
            self.heartbeatInterval = heartbeatInterval
            self.instanceWindow = instanceWindow
            self.timeout = timeout
            self.expiryInterval = expiryInterval
        }
    }

    /// The limiter whose leases this client serves.
    public let limiter: RateLimiter
    let backend: any QuotaLedgerBackend
    /// Tuning in force.
    public let settings: Settings
    let logger: Logger
    private let totals = NIOLockedValueBox(QuotaLeaseCounters())

    /// Connects `limiter` (made in cluster mode) to `backend`.
    public init(limiter: RateLimiter, backend: any QuotaLedgerBackend, settings: Settings, logger: Logger) {
        self.limiter = limiter
        self.backend = backend
        self.settings = settings
        self.logger = logger
        limiter.attachLedger { [weak self] actions in self?.perform(actions) }
    }

    /// Totals so far.
    public var counters: QuotaLeaseCounters { totals.withLockedValue { $0 } }

    /// Starts the ledger work for `actions`; returns at once.
    public func perform(_ actions: [QuotaLeaseAction]) {
        for action in actions {
            switch action {
            case .acquire(let key, let count): Task { await self.acquire(key, count: count) }
            case .release(let key, let count): Task { await self.release(key, count: count) }
            }
        }
    }

    private func acquire(_ key: QuotaLeaseKey, count: Int) async {
        do {
            let grant = try await deadline { [backend] in try await backend.grant(key.limit, key.gcra, requested: count) }
            totals.withLockedValue {
                if grant.granted > 0 { $0.leasesGranted += 1 } else { $0.leasesEmpty += 1 }
                $0.admissionsGranted += grant.granted
            }
            limiter.leaseGranted(key, grant, now: Self.now())
        } catch {
            failed("a lease request", error)
            limiter.leaseFailed(key)
        }
    }

    private func release(_ key: QuotaLeaseKey, count: Int) async {
        do {
            try await deadline { [backend] in try await backend.giveBack(key.limit, key.gcra, unused: count) }
            totals.withLockedValue { $0.admissionsReturned += count }
        } catch {
            // Admissions not given back are lost to the cluster until their time passes: under-admission only.
            failed("giving back unused admissions", error)
            limiter.ledgerUnreachable()
        }
    }

    /// One heartbeat: on success the limiter leases again with the new instance count; on failure it falls back.
    @discardableResult
    public func heartbeat() async -> Bool {
        let window = settings.instanceWindow.components
        let windowNanos = window.seconds * 1_000_000_000 + window.attoseconds / 1_000_000_000
        do {
            let instances = try await deadline { [backend, settings] in try await backend.heartbeat(node: settings.nodeID, window: windowNanos) }
            let wasFallback = limiter.quotaStatus?.fallback ?? false
            limiter.ledgerReachable(instances: instances)
            if wasFallback {
                logger.notice("quota ledger reachable again: limits are leased cluster-wide", metadata: ["instances": "\(instances)"])
            }
            return true
        } catch {
            failed("a heartbeat", error)
            limiter.ledgerUnreachable()
            return false
        }
    }

    /// Heartbeats (more often while in fallback, to notice the ledger's return), gives expired leases back and
    /// sweeps the ledger, until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let reachable = await self.heartbeat()
                    let pause = reachable ? self.settings.heartbeatInterval : min(self.settings.heartbeatInterval, .milliseconds(250))
                    try? await Task.sleep(for: pause)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.settings.expiryInterval)
                    self.perform(self.limiter.expireLeases(now: Self.now()))
                }
            }
            group.addTask { [backend] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(60))
                    try? await self.deadline { try await backend.sweep() }
                }
            }
        }
    }

    /// Gives every unspent admission back (at a graceful stop), so other instances can use them at once.
    public func releaseAll() async {
        await withTaskGroup(of: Void.self) { group in
            for case .release(let key, let count) in limiter.expireLeases(now: Int64.max) {
                group.addTask { await self.release(key, count: count) }
            }
        }
    }

    private func failed(_ what: String, _ error: any Error) {
        let entering = !(limiter.quotaStatus?.fallback ?? true)
        totals.withLockedValue {
            $0.failures += 1
            if entering { $0.fallbacks += 1 }
        }
        if entering {
            logger.warning(
                "quota ledger unreachable: each limit is now enforced as this instance's share until it answers again",
                metadata: ["failed": "\(what)", "error": "\(error)", "instances": "\(limiter.quotaStatus?.instances ?? 1)"])
        }
    }

    /// The cluster-wide TATs of `keys`, for the admin API: read only, within the ledger client's timeout, and not
    /// counted as a failed lease when it fails (the data plane's fallback is the leases' business).
    public func reading(_ keys: [RateLimitKey]) async throws -> QuotaLedgerReading {
        let backend = backend
        return try await deadline { try await backend.reading(keys) }
    }

    /// Runs `body`, failing with `QuotaLedgerTimeout` when it takes longer than the timeout. The body keeps
    /// running in the background until the pool gives up on it; the caller does not wait for it.
    private func deadline<Result: Sendable>(_ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
        let timeout = settings.timeout
        return try await withDeadline(timeout, { QuotaLedgerTimeout(timeout: timeout) }, body)
    }

    /// This instance's monotonic clock, the one `RateLimiter.decide` is given.
    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}

/// A ledger request took longer than the ledger client's timeout.
public struct QuotaLedgerTimeout: Error, CustomStringConvertible {
    /// The timeout that passed.
    public let timeout: Duration
    /// A readable reason.
    public var description: String { "the quota ledger did not answer within \(timeout)" }
}
