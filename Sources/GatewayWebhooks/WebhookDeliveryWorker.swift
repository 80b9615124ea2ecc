import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// How the worker delivers: the schedule, the per-destination limits, the lease.
public struct WebhookDeliverySettings: Sendable {
    /// Back-off and attempts.
    public var schedule: WebhookDeliverySchedule
    /// Deliveries in flight per destination.
    public var concurrencyPerDestination: Int
    /// The per-destination breaker.
    public var breaker: CircuitBreaker.Settings
    /// One attempt's limit.
    public var timeout: TimeAmount
    /// How long a claim is held; past it another instance may take the delivery over. Longer than `timeout`.
    public var leaseMicros: Int64
    /// How often the store is looked at when nothing wakes the worker.
    public var pollInterval: Duration
    /// Events older than this with nothing pending are pruned (at least 7 days: Klarna retries for about one).
    public var retentionMicros: Int64
    /// Roots trusted for `https` destinations; nil uses the system's.
    public var trustRootsPEM: String?

    /// Makes settings.
    public init(
        schedule: WebhookDeliverySchedule = .standard, concurrencyPerDestination: Int = 8, breaker: CircuitBreaker.Settings = .init(),
        timeout: TimeAmount = .seconds(10), leaseMicros: Int64 = 60_000_000, pollInterval: Duration = .milliseconds(500),
        retentionMicros: Int64 = 7 * 86_400_000_000, trustRootsPEM: String? = nil
    ) {
        self.schedule = schedule
        self.concurrencyPerDestination = concurrencyPerDestination
        self.breaker = breaker
        self.timeout = timeout
        self.leaseMicros = leaseMicros
        self.pollInterval = pollInterval
        self.retentionMicros = retentionMicros
        self.trustRootsPEM = trustRootsPEM
    }
}

/// Delivers stored events: claims due deliveries per destination (as many as its concurrency limit and breaker
/// allow), sends each, and records the outcome, the next attempt or `dead`, in the store and the audit trail.
///
/// Everything it knows is in the store, so a restart (or `kill -9`) resumes where the store says: a delivery
/// claimed by a process that died is taken over once its lease runs out, and may therefore reach its destination
/// twice (at least once), never not at all.
public final class WebhookDeliveryWorker: Sendable {
    private let store: any WebhookStore
    private let directory: WebhookDirectoryHolder
    private let journal: any CallJournal
    private let metrics: WebhookMetrics
    private let settings: WebhookDeliverySettings
    private let nodeID: String
    private let sender: WebhookSender
    private let client: HTTPClient
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let gates = NIOLockedValueBox<[String: WebhookDestinationGate]>([:])
    /// Outcomes go to the store in group commits: with many deliveries in flight, one transaction records many.
    private let outcomes: GroupCommit<WebhookDeliveryOutcome, Void>
    private let wakeups: AsyncStream<Void>
    private let wakeup: AsyncStream<Void>.Continuation
    /// Whether `run()` started and whether `stop()` was called: the client is shut down by whichever ends last.
    private let lifecycle = NIOLockedValueBox<(ran: Bool, stopped: Bool)>((false, false))

    /// Makes a worker; `run()` starts it.
    public init(
        store: any WebhookStore, directory: WebhookDirectoryHolder, journal: any CallJournal, metrics: WebhookMetrics, settings: WebhookDeliverySettings,
        nodeID: String, group: any EventLoopGroup, logger: Logger
    ) {
        self.store = store
        self.directory = directory
        self.journal = journal
        self.metrics = metrics
        self.settings = settings
        self.nodeID = nodeID
        self.logger = logger
        eventLoop = group.next()
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: settings.timeout))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, settings.concurrencyPerDestination))
        client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
        sender = WebhookSender(client: client, trustRootsPEM: settings.trustRootsPEM, timeout: settings.timeout)
        (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        outcomes = GroupCommit { batch in
            try await store.completeWebhookDeliveries(batch)
            return batch.map { _ in () }
        }
    }

    /// Looks at the store now (new events were stored, a replay was asked for).
    public func wake() { wakeup.yield() }

    /// Delivers until `stop()` (or the task is cancelled), then waits for the attempts in flight and closes the
    /// client: an attempt is never cut short by a graceful stop.
    public func run() async {
        let starts = lifecycle.withLockedValue { state -> Bool in
            if state.stopped { return false }
            state.ran = true
            return true
        }
        guard starts else { return }
        let poller = Task { [wakeup, settings] in
            while !Task.isCancelled {
                try? await Task.sleep(for: settings.pollInterval)
                wakeup.yield()
            }
        }
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { tasks in
                var lastUpkeep = ContinuousClock.now - .seconds(3600)
                for await _ in wakeups {
                    if Task.isCancelled { break }
                    await claimAndSend(into: &tasks)
                    if ContinuousClock.now - lastUpkeep > .seconds(5) {
                        lastUpkeep = ContinuousClock.now
                        await upkeep()
                    }
                }
            }
        } onCancel: {
            wakeup.finish()
        }
        poller.cancel()
        try? await client.shutdown()
    }

    /// Stops the wake-ups; `run()` returns once the attempts in flight ended. A worker that never ran closes its
    /// client here (the client must be shut down before it is released).
    public func stop() async {
        let ran = lifecycle.withLockedValue { state -> Bool in
            state.stopped = true
            return state.ran
        }
        wakeup.finish()
        if !ran { try? await client.shutdown() }
    }

    private static func monotonicNow() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    private func claimAndSend(into tasks: inout DiscardingTaskGroup) async {
        let directory = directory.current
        let now = Self.monotonicNow()
        let wallMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        for (name, destination) in directory.destinations.sorted(by: { $0.key < $1.key }) {
            let room = gates.withLockedValue { gates in
                let gate = gates[name] ?? WebhookDestinationGate(concurrency: settings.concurrencyPerDestination, breaker: settings.breaker)
                gates[name] = gate
                return gate.room(now: now)
            }
            guard room > 0 else { continue }
            let claims: [ClaimedWebhookDelivery]
            do {
                claims = try await store.claimWebhookDeliveries(
                    owner: nodeID, destination: name, nowMicros: wallMicros, leaseMicros: settings.leaseMicros, limit: room)
            } catch {
                logger.warning("webhook deliveries could not be claimed", metadata: ["destination": "\(name)", "error": "\(error)"])
                continue
            }
            for claim in claims {
                let admission = gates.withLockedValue { $0[name]?.start(now: Self.monotonicNow()) ?? .reject(retryAfter: 0) }
                // Rejected by the breaker after the claim: the lease runs out and it is claimed again later.
                if case .reject = admission { continue }
                tasks.addTask { await self.attempt(claim, destination: destination, probe: admission == .probe) }
            }
        }
    }

    private func attempt(_ claim: ClaimedWebhookDelivery, destination: WebhookDestination, probe: Bool) async {
        let started = ContinuousClock.now
        let result = await sender.send(claim.event, to: destination)
        let latency = ContinuousClock.now - started
        let delivered = result.status.map { (200..<300).contains($0) } ?? false
        gates.withLockedValue { $0[destination.record.name]?.finish(delivered: delivered, probe: probe, now: Self.monotonicNow()) }
        let number = claim.delivery.attempts + 1
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var random = SystemRandomNumberGenerator()
        let (state, next) = settings.schedule.after(attempt: number, status: result.status, nowMicros: nowMicros, random: &random)
        let outcome = WebhookDeliveryOutcome(
            eventID: claim.event.eventID, destination: destination.record.name, nodeID: nodeID, attempt: number, state: state, nextAttemptMicros: next,
            status: result.status, error: result.error, timeMicros: nowMicros)
        do {
            try await outcomes.submit(outcome)
            // A slot freed: claim the next due delivery now rather than at the next poll.
            wake()
        } catch {
            // The lease runs out and the delivery is attempted again: at least once.
            logger.error("webhook delivery outcome not stored", metadata: ["event_id": "\(claim.event.eventID)", "error": "\(error)"])
            return
        }
        metrics.countAttempt(destination: destination.record.name, state: state)
        if state == .dead {
            logger.warning("webhook delivery dead after its last attempt", metadata: [
                "event_id": "\(claim.event.eventID)", "destination": "\(destination.record.name)", "attempts": "\(number)",
            ])
        }
        let record = WebhookAuditRecords.delivery(
            claimed: claim, attempt: number, timeMicros: nowMicros, status: result.status, state: state,
            latencyMicros: latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000,
            certificateFingerprint: result.certificateFingerprint)
        do {
            try await journal.record(record, on: eventLoop).get()
        } catch {
            logger.error("webhook delivery audit record failed", metadata: ["event_id": "\(claim.event.eventID)", "error": "\(error)"])
        }
    }

    private func upkeep() async {
        let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        if let oldest = try? await store.oldestPendingWebhookDeliveries() {
            metrics.setOldestPending(oldest, destinations: Array(directory.current.destinations.keys), nowMicros: nowMicros)
        }
        do {
            let pruned = try await store.pruneWebhookEvents(receivedBefore: nowMicros - settings.retentionMicros)
            if pruned > 0 { logger.notice("webhook events pruned", metadata: ["events": "\(pruned)"]) }
        } catch {
            logger.warning("webhook events could not be pruned", metadata: ["error": "\(error)"])
        }
    }
}
