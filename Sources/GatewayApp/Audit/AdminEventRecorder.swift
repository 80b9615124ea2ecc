import GatewayCore
import GatewayProxy
import Logging
import NIOCore
import NIOPosix

/// Records the store's change log (changes the CLI made, with or without a gateway running) in this node's audit
/// chain, one admin record per event, as docs/admin-api.md ("Audit of CLI changes") describes.
///
/// Each event is claimed first (one conditional `UPDATE`, so of several instances sharing a store exactly one
/// records it), then recorded through the node's journal, then marked finished once the record is durable. The
/// node's own unfinished claims are recorded again at every pass, the first one at start, so a crash between the
/// claim and the finish loses no record; at worst the event is recorded twice, under the same request id. Another
/// node's claim left unfinished longer than `takeOverAfter` is taken over (its node may never come back), with the
/// same worst case should that node come back meanwhile.
public struct AdminEventRecorder: Sendable {
    /// The store's change log.
    let store: any AdminEventAuditing
    /// This node's id, which claims carry.
    let node: String
    /// Where the records go: the gateway's journal (the audit trail and the access log), as the admin API's do.
    let journal: any CallJournal
    /// How long to wait between passes.
    let interval: Duration
    /// How long another node's claim may stay unfinished before this node takes it over.
    let takeOverAfter: Duration
    let eventLoop: any EventLoop
    let logger: Logger

    /// The most events one query reads; a larger backlog (after a long time without a gateway) takes several.
    static let batch = 100

    /// The default of `takeOverAfter`: far beyond a pass (a second) and a trail's short outage, so a live node keeps
    /// its claims, and beyond any clock skew between nodes, whose clocks date the claims; short enough that a change
    /// made while its recording node died is in a chain within minutes.
    public static let claimTakeOver: Duration = .seconds(300)

    /// Makes a recorder for `node`, looking for new events every `interval` and taking over other nodes' claims
    /// older than `takeOverAfter`.
    public init(
        store: any AdminEventAuditing, node: String, journal: any CallJournal, interval: Duration,
        takeOverAfter: Duration = AdminEventRecorder.claimTakeOver, logger: Logger
    ) {
        self.store = store
        self.node = node
        self.journal = journal
        self.interval = interval
        self.takeOverAfter = takeOverAfter
        self.eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        self.logger = logger
    }

    /// The longest a pass is waited for: a pass stuck on the store (a query postgres-nio never answers) must not end
    /// the recording for good, and the next pass records this node's unfinished claims again.
    static let passDeadline = Duration.seconds(60)

    /// A pass (or the stop's wait for it) that did not end in time.
    public struct Stuck: Error, CustomStringConvertible {
        /// Makes the error.
        public init() {}
        /// A readable reason.
        public var description: String { "the change-log recorder's pass did not end in time" }
    }

    /// Records pending events every `interval` until cancelled; a failed pass (store or trail unavailable) is
    /// logged and retried at the next, its claims kept.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await withDeadline(Self.passDeadline, { Stuck() }) { try await recordPending() }
            } catch {
                logger.warning("change-log events not recorded in the audit trail yet; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One pass: this node's unfinished claims first, then every event no node has claimed, then other nodes'
    /// claims older than `takeOverAfter`; returns how many it recorded.
    @discardableResult
    public func recordPending() async throws -> Int {
        var recorded = 0
        for stored in try await store.unfinishedAdminEvents(claimedBy: node) {
            try await record(stored)
            recorded += 1
        }
        while !Task.isCancelled {
            let events = try await store.unclaimedAdminEvents(limit: Self.batch)
            for stored in events where try await store.claimAdminEvent(id: stored.id, node: node, atMicros: UTCTime.nowMicros()) {
                try await record(stored)
                recorded += 1
            }
            if events.count < Self.batch { break }
        }
        return recorded + (try await takeOverStaleClaims())
    }

    /// Records the events other nodes claimed before the bound and never finished, each taken over first (a claim
    /// that another node took over, or its claimant finished, meanwhile is left to it). A claim taken over (by any
    /// node) or finished leaves the stale set, so the loop ends; a batch of which none was taken ends it too.
    private func takeOverStaleClaims() async throws -> Int {
        let bound = takeOverAfter.components
        let boundMicros = bound.seconds * 1_000_000 + bound.attoseconds / 1_000_000_000_000
        var recorded = 0
        var taken = 1
        while !Task.isCancelled, taken > 0 {
            taken = 0
            let cutoff = UTCTime.nowMicros() - boundMicros
            let claims = try await store.staleAdminEventClaims(claimedBefore: cutoff, excluding: node, limit: Self.batch)
            for stored in claims {
                guard let claimant = stored.claimedBy,
                    try await store.takeOverAdminEvent(id: stored.id, from: claimant, node: node, claimedBefore: cutoff, atMicros: UTCTime.nowMicros())
                else { continue }
                logger.warning(
                    "took over a change-log event another node claimed and did not record in time",
                    metadata: ["event": "\(stored.id)", "claimed_by": "\(claimant)"])
                taken += 1
                try await record(stored)
                recorded += 1
            }
            if claims.count < Self.batch { break }
        }
        return recorded
    }

    /// Records one claimed event and, once the record is durable, marks it finished.
    private func record(_ stored: StoredAdminEvent) async throws {
        try await journal.record(AdminAuditRecords.record(of: stored), on: eventLoop).get()
        try await store.finishAdminEvent(id: stored.id, node: node, atMicros: UTCTime.nowMicros())
        logger.info(
            "change made outside the admin API recorded in the audit trail",
            metadata: ["event": "\(stored.id)", "action": "\(stored.event.action)", "actor": "\(stored.event.actor)"])
    }
}
