import Dispatch
import Foundation
import GRDB
import GatewayCore
import GatewayPostgres
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// The audit trail's only writer: records gathered per event loop, drained by one serial worker in group commits.
///
/// A record is packed into bytes on its event loop (`AuditPackedRecords`: no string retained) until the end of the
/// loop's tick, when everything the loop recorded in that tick is handed to the writer at once; so no lock is
/// shared by every loop per record, and encoding, hashing and binding happen on the worker, not on the loop.
/// Everything handed over while a batch is being written goes into the next transaction, so throughput grows with
/// load while each caller waits for at most two commits; each loop's callers are then told with one task on that
/// loop. The chain hash is computed here, in sequence order. Failures fail the whole batch (the data plane then
/// refuses those calls) and every later batch retries, so the gateway resumes by itself once the store is writable
/// again.
public final class AuditWriter: @unchecked Sendable {
    // @unchecked: `shared` is behind a lock, each `LoopQueue` is confined to its loop's thread, and everything
    // else mutable is confined to `worker`.

    /// Who learns that a record is durable: a future's promise, or a call's waiter, told with the record's phase.
    enum Completion: @unchecked Sendable {
        // @unchecked: a waiter is the call's own object, confined to its loop; the writer's thread only carries
        // it back there (`complete(_:with:)` tells it in a task on that loop).
        case promise(EventLoopPromise<Void>)
        case waiter(any JournalWaiter, CallRecord.Phase)

        func complete(_ result: Result<Void, any Error>) {
            switch self {
            case .promise(let promise): promise.completeWith(result)
            case .waiter(let waiter, let phase): waiter.journaled(result, phase: phase)
            }
        }
    }

    /// What one event loop recorded in one tick (or one record from a caller off its loop).
    struct LoopBatch {
        let loop: any EventLoop
        var records = AuditPackedRecords()
        /// Empty in `async` mode, where callers are answered on enqueue.
        var completions: [Completion] = []
    }

    /// One writer's records on one event loop, not yet handed over. Filled only on that loop's thread; its lock
    /// is taken by that loop alone except when `flush` or `shutdown` takes what it holds, so it is uncontended,
    /// and those two never need to schedule work on a loop that may already have stopped.
    final class LoopQueue: @unchecked Sendable {
        let loop: any EventLoop
        private let lock = NIOLock()
        private var batch: LoopBatch
        private var handOverScheduled = false

        init(loop: any EventLoop) {
            self.loop = loop
            batch = LoopBatch(loop: loop)
        }

        /// Packs a record; true when the caller must schedule the hand-over at the end of the loop's tick.
        func add(_ record: CallRecord, nodeID: String, _ completion: Completion?) -> Bool {
            lock.withLock {
                batch.records.append(record, nodeID: nodeID)
                if let completion { batch.completions.append(completion) }
                if handOverScheduled { return false }
                handOverScheduled = true
                return true
            }
        }

        /// Takes what the queue holds (nil when empty), leaving room for as many records next time; `scheduled`
        /// when called by the scheduled hand-over, which the next record then schedules again.
        func take(scheduled: Bool) -> LoopBatch? {
            lock.withLock {
                if scheduled { handOverScheduled = false }
                guard batch.records.count > 0 else { return nil }
                // A new buffer, not the one the writer read last: packing into memory fresh to this core, rather than
                // into lines the writer's core last held, gave `commit` 3% more calls per second for the few
                // allocations a batch makes (docs/performance.md, audit trail, sixteenth round).
                var next = LoopBatch(loop: loop)
                next.records.reserveCapacity(like: batch.records)
                next.completions.reserveCapacity(batch.completions.count)
                swap(&next, &batch)
                return next
            }
        }
    }

    /// Every writer's queue on the current thread (a process normally has one writer; tests have several).
    private final class ThreadQueues: @unchecked Sendable {  // @unchecked: one thread's, by construction
        var queues: [(writer: UInt64, queue: LoopQueue)] = []
    }

    /// One thread-specific key for the process, whatever the number of writers.
    private static let threadQueues = ThreadSpecificVariable<ThreadQueues>()
    private static let writerIDs = NIOLockedValueBox<UInt64>(0)

    private struct Shared {
        var inbox: [LoopBatch] = []
        var scheduled = false
        /// Set by the shutdown's last drain: nothing handed over later would ever be written.
        var finished = false
        var health = AuditHealth()
        var loopQueues: [LoopQueue] = []
    }

    /// The node id written into every record and checkpoint.
    public let nodeID: String
    /// The durability mode.
    public let mode: AuditDurability
    private let signer: AuditSigner
    private let checkpointEveryRecords: Int
    private let checkpointEverySeconds: Double
    private let checkpointFile: String?
    private let queueLimit: Int
    private let retryWindow: TimeInterval
    private let logger: Logger
    private let shared = NIOLockedValueBox(Shared())
    private let worker = DispatchQueue(label: "audit-writer")
    /// Appends signed checkpoints to `checkpointFile`, in order, so that the file's sync never holds a commit.
    private let checkpointFileQueue = DispatchQueue(label: "audit-checkpoint-file")
    private let id = AuditWriter.writerIDs.withLockedValue { last in
        last += 1
        return last
    }
    /// Records accepted and not yet taken by the worker, wherever they wait: checked against `queueLimit`
    /// without a lock.
    private let queued = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    /// Mirrors `health.isHealthy` for `async` mode's refusal, read on every record without the lock.
    private let failing = Atomic<Bool>(false)

    // Confined to `worker`.
    private let backend: any AuditBackend
    private var isOpen = false
    /// Whether `chain` holds a head the store gave (false until the first open).
    private var headKnown = false
    private var chain = AuditChainLinker(seq: 0, hash: AuditCanonical.genesisHash)
    private var lastCheckpointSeq: Int64 = 0
    private var lastCheckpointTime = Date()
    private var backlog: [AuditPackedRecords] = []
    private var spareInbox: [LoopBatch] = []
    private var timer: DispatchSourceTimer?

    /// Starts a writer; the store is opened by the worker (and reopened after failures), so a missing or
    /// unwritable store makes calls fail rather than the gateway fail to start.
    ///
    /// `path` is a SQLite file or a `postgres://` URL (one chain per node id in a shared database).
    /// `retryWindow` is how long a batch keeps retrying a PostgreSQL connection that was lost before its calls are
    /// refused, so that a server restart of a few seconds holds calls instead of refusing them; `statementTimeout`
    /// how long one PostgreSQL statement may go unanswered before its connection is given up.
    public init(
        path: String, nodeID: String, mode: AuditDurability = .commit, signer: AuditSigner,
        checkpointEveryRecords: Int = 10_000, checkpointEverySeconds: Double = 60, checkpointFile: String? = nil,
        queueLimit: Int = 100_000, lockTimeout: TimeInterval = 2, retryWindow: TimeInterval = 5,
        statementTimeout: TimeInterval = 30, logger: Logger = Logger(label: "audit")
    ) {
        if PostgresURL.isPostgresURL(path) {
            backend = AuditPostgresBackend(
                url: path, nodeID: nodeID, durability: mode,
                statementTimeout: .milliseconds(Int64(min(max(statementTimeout, 0.1), 3_600) * 1_000)), logger: logger)
        } else {
            backend = AuditSQLiteBackend(path: path, durability: mode, lockTimeout: lockTimeout, logger: logger)
        }
        self.nodeID = nodeID
        self.mode = mode
        self.signer = signer
        self.checkpointEveryRecords = max(1, checkpointEveryRecords)
        self.checkpointEverySeconds = max(0.05, checkpointEverySeconds)
        self.checkpointFile = checkpointFile
        self.queueLimit = max(1, queueLimit)
        self.retryWindow = max(0, retryWindow)
        self.logger = logger
        let timer = DispatchSource.makeTimerSource(queue: worker)
        let interval = min(1, self.checkpointEverySeconds / 2)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.tick() }
        worker.sync {
            self.timer = timer
            do {
                try self.openIfNeeded()
            } catch {
                self.closeAfterFailure()
                self.recordFailure(String(describing: error))
            }
        }
        timer.resume()
    }

    /// The writer's state for the health endpoint.
    public var health: AuditHealth {
        var health = shared.withLockedValue { $0.health }
        health.queueDepth = max(0, queued.load(ordering: .relaxed))
        return health
    }

    /// Queues a record; in `commit` and `fsync` modes the future succeeds once the batch holding it committed,
    /// in `async` mode once it is queued. It fails at once when the queue is full or the writer is shut down,
    /// and in `async` mode while the store is failing. The future is completed on `eventLoop`.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        if let refused = refusal() { return eventLoop.makeFailedFuture(refused) }
        guard mode != .async else {
            queue(record, on: eventLoop, nil)
            return eventLoop.makeSucceededVoidFuture()
        }
        let promise = eventLoop.makePromise(of: Void.self)
        queue(record, on: eventLoop, .promise(promise))
        return promise.futureResult
    }

    /// Records as `record(_:on:)` does, telling `waiter` (on `eventLoop`, with the record's phase) instead of
    /// completing a future; an immediate answer (a refusal, or `async` mode) is told before this returns.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop, waiter: any JournalWaiter) {
        if let refused = refusal() { return waiter.journaled(.failure(refused), phase: record.phase) }
        guard mode != .async else {
            queue(record, on: eventLoop, nil)
            return waiter.journaled(.success(()), phase: record.phase)
        }
        queue(record, on: eventLoop, .waiter(waiter, record.phase))
    }

    /// Why a record cannot be accepted now (shut down, `async` mode while the store fails, the queue full); nil
    /// when it can, in which case its place in the queue is taken.
    private func refusal() -> AuditError? {
        if closed.load(ordering: .relaxed) { return .shutDown }
        if mode == .async, failing.load(ordering: .relaxed) {
            let reason = shared.withLockedValue { $0.health.lastError }
            return .unavailable(reason ?? "previous batch failed")
        }
        if queued.wrappingAdd(1, ordering: .relaxed).oldValue >= queueLimit {
            queued.wrappingSubtract(1, ordering: .relaxed)
            shared.withLockedValue { $0.health.queueFullRefusals += 1 }
            return .queueFull(limit: queueLimit)
        }
        return nil
    }

    /// Packs an accepted record into its loop's batch (or a batch of its own when called off the loop).
    private func queue(_ record: CallRecord, on eventLoop: any EventLoop, _ completion: Completion?) {
        if eventLoop.inEventLoop, let queue = loopQueue(for: eventLoop) {
            if queue.add(record, nodeID: nodeID, completion) {
                // Runs after the I/O the loop is handling now: everything recorded in this tick goes over together.
                eventLoop.execute { self.handOver(queue) }
            }
        } else {
            var batch = LoopBatch(loop: eventLoop, completions: completion.map { [$0] } ?? [])
            batch.records.append(record, nodeID: nodeID)
            enqueue(batch)
        }
    }

    /// This writer's queue on the calling thread, which runs `loop`; nil if the thread's queue is another loop's.
    private func loopQueue(for loop: any EventLoop) -> LoopQueue? {
        let queues: ThreadQueues
        if let existing = Self.threadQueues.currentValue {
            queues = existing
            for (writer, queue) in queues.queues where writer == id { return queue.loop === loop ? queue : nil }
        } else {
            queues = ThreadQueues()
            Self.threadQueues.currentValue = queues
        }
        let queue = LoopQueue(loop: loop)
        queues.queues.append((id, queue))
        shared.withLockedValue { $0.loopQueues.append(queue) }
        return queue
    }

    /// On `queue`'s loop, at the end of a tick: hands what it gathered to the writer.
    private func handOver(_ queue: LoopQueue) {
        if let batch = queue.take(scheduled: true) { enqueue(batch) }
    }

    /// Puts a batch in the writer's inbox and wakes the worker if it is idle: one lock per loop per tick.
    private func enqueue(_ batch: LoopBatch) {
        let wake: Bool? = shared.withLockedValue { state in
            if state.finished { return nil }
            state.inbox.append(batch)
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
        switch wake {
        case nil:
            queued.wrappingSubtract(batch.records.count, ordering: .relaxed)
            complete([batch], with: .failure(.shutDown))
        case true?:
            worker.async { self.drain() }
        case false?:
            break
        }
    }

    /// Hands over what every loop holds, from the calling thread: a loop may already have stopped.
    private func handOverEveryLoop() {
        let queues = shared.withLockedValue { $0.loopQueues }
        for queue in queues {
            if let batch = queue.take(scheduled: false) { enqueue(batch) }
        }
    }

    /// Returns once everything queued before the call has been written (or has failed).
    public func flush() async {
        handOverEveryLoop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            worker.async {
                self.drain()
                if !self.backlog.isEmpty { self.writeBacklog() }
                // After the checkpoints those batches published.
                self.checkpointFileQueue.async { continuation.resume() }
            }
        }
    }

    /// Refuses new records, writes what is queued, signs a final checkpoint and closes the store.
    public func shutdown() async {
        closed.store(true, ordering: .relaxed)
        // Records accepted before the flag was set are still on their loops (in `async` mode already answered):
        // they are written like the rest.
        handOverEveryLoop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            worker.async {
                self.drain(last: true)
                if !self.backlog.isEmpty { self.writeBacklog() }
                if self.chain.seq > self.lastCheckpointSeq { self.writeCheckpointOnly() }
                self.timer?.cancel()
                self.timer = nil
                self.backend.close()
                self.isOpen = false
                self.checkpointFileQueue.async { continuation.resume() }
            }
        }
    }

    // MARK: - Worker

    private func drain(last: Bool = false) {
        while true {
            var batches: [LoopBatch] = []
            swap(&batches, &spareInbox)  // an empty array with capacity: the inbox then never allocates
            let taken: Bool = shared.withLockedValue { state in
                guard !state.inbox.isEmpty else {
                    state.scheduled = false
                    if last { state.finished = true }
                    return false
                }
                swap(&state.inbox, &batches)
                return true
            }
            guard taken else { return }
            var count = 0
            for batch in batches { count += batch.records.count }
            queued.wrappingSubtract(count, ordering: .relaxed)
            write(&batches)
            batches.removeAll(keepingCapacity: true)
            spareInbox = batches
        }
    }

    private func tick() {
        if !backlog.isEmpty {
            writeBacklog()
        } else if !isOpen {
            // A server store that failed is probed here, so that health (and `/readyz`) recovers even when no call
            // arrives to try it: a load balancer stops sending calls to a gateway that is not ready.
            do {
                try openIfNeeded()
                recordSuccess(seq: chain.seq)
            } catch {
                closeAfterFailure()
                recordFailure(String(describing: error))
            }
        } else if chain.seq > lastCheckpointSeq, Date().timeIntervalSince(lastCheckpointTime) >= checkpointEverySeconds {
            writeCheckpointOnly()
        }
    }

    private func openIfNeeded() throws {
        if isOpen { return }
        let head = try backend.open()
        isOpen = true
        chain = AuditChainLinker(seq: head.lastSeq, hash: head.lastHash)
        headKnown = true
        lastCheckpointSeq = head.lastCheckpointSeq
        lastCheckpointTime = Date()
        shared.withLockedValue {
            $0.health.lastSeq = head.lastSeq
            $0.health.lastCheckpointSeq = head.lastCheckpointSeq
        }
    }

    private func closeAfterFailure() {
        guard backend.closesAfterFailure else { return }
        backend.close()
        isOpen = false
    }

    /// Writes the async backlog and `batches` in one transaction, checkpointing when due, then tells each loop's
    /// callers with one task on that loop.
    ///
    /// While the store was healthy, a failure on a store that reconnects (PostgreSQL) is retried for
    /// `retryWindow` before the batch fails; meanwhile new records queue up to `queueLimit`. Once failing, each
    /// batch is tried once, so calls are refused quickly until the store is back.
    private func write(_ batches: inout [LoopBatch]) {
        var segments = backlog
        backlog = []
        segments.reserveCapacity(segments.count + batches.count)
        for index in batches.indices {
            // Moved, not copied: the batch keeps only its completions.
            var records = AuditPackedRecords()
            swap(&records, &batches[index].records)
            segments.append(records)
        }
        let started = Date()
        var delay = 0.05
        // Leading segments a try found in the store after its answer was lost: never written again, also when a
        // later try fails.
        var landed = 0
        var outcome = attempt(segments, landed: &landed)
        while case .failure = outcome, backend.closesAfterFailure, health.isHealthy,
            Date().timeIntervalSince(started) + delay <= retryWindow
        {
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 1)
            outcome = attempt(segments, landed: &landed)
        }
        switch outcome {
        case .failure(let error):
            let reason = String(describing: error)
            if mode == .async { backlog = Array(segments[landed...]) }
            // Health first, so whoever sees the failed future also sees why.
            recordFailure(reason)
            complete(batches, with: .failure(AuditError.unavailable(reason)))
        case .success(let checkpoint):
            recordSuccess(seq: chain.seq)
            complete(batches, with: .success(()))
            if let checkpoint { published(checkpoint) }
        }
    }

    private func writeBacklog() {
        var none: [LoopBatch] = []
        write(&none)
    }

    /// Completes the batches' records with one task per event loop rather than one cross-thread hop per record.
    private func complete(_ batches: [LoopBatch], with result: Result<Void, AuditError>) {
        var groups: [(loop: any EventLoop, completions: [[Completion]])] = []
        for batch in batches where !batch.completions.isEmpty {
            if let index = groups.firstIndex(where: { $0.loop === batch.loop }) {
                groups[index].completions.append(batch.completions)
            } else {
                groups.append((batch.loop, [batch.completions]))
            }
        }
        let result = result.mapError { $0 as any Error }
        for (loop, completions) in groups {
            loop.execute {
                for list in completions {
                    for completion in list { completion.complete(result) }
                }
            }
        }
    }

    /// One try at appending `segments` after the chain head, past the first `landed` of them; advances the head
    /// only when the store committed.
    private func attempt(_ segments: [AuditPackedRecords], landed: inout Int) -> Result<AuditCheckpoint?, any Error> {
        do {
            let known = headKnown ? chain : nil
            let knownCheckpointSeq = lastCheckpointSeq
            try openIfNeeded()
            // A reopened store's head past the one this writer knew is a try whose answer was lost after it
            // committed (only this writer appends its chain): those segments are not written again.
            let found = landedCount(segments[landed...], after: known)
            if found > 0 {
                landed += found
                // A checkpoint signed in that statement is in the store but not in the checkpoint file: one is
                // signed again at the head, as if it had not been.
                lastCheckpointSeq = min(lastCheckpointSeq, knownCheckpointSeq)
            }
            let pending = landed == 0 ? segments : Array(segments[landed...])
            // Linked afresh on every try: the chain head moves only when the store committed.
            var linked = chain
            let links = linked.link(pending)
            let checkpoint = checkpointDue(at: linked.seq)
                ? try signer.checkpoint(nodeID: nodeID, seq: linked.seq, timeMicros: Self.nowMicros(), hash: linked.hash) : nil
            if !pending.isEmpty || checkpoint != nil { try backend.append(pending, links: links, checkpoint: checkpoint) }
            chain = linked
            return .success(checkpoint)
        } catch {
            closeAfterFailure()
            return .failure(error)
        }
    }

    /// How many of `segments`, from the first, the store already holds after the head `known`: none, unless the
    /// store's head (`chain`) lies exactly where linking them after `known` ends, hash for hash (they landed before
    /// their answer was lost). The async backlog is retried with newer batches after it, so a prefix may have.
    private func landedCount(_ segments: ArraySlice<AuditPackedRecords>, after known: AuditChainLinker?) -> Int {
        guard let known, chain.seq > known.seq else { return 0 }
        var probe = known
        for (count, segment) in segments.enumerated() {
            _ = probe.link([segment])
            if probe.seq == chain.seq {
                guard probe.hash == chain.hash else { return 0 }
                logger.warning("audit records found committed after their answer was lost; not written again", metadata: [
                    "records": "\(chain.seq - known.seq)", "seq": "\(chain.seq)",
                ])
                return count + 1
            }
            if probe.seq > chain.seq { break }
        }
        return 0
    }

    private func checkpointDue(at seq: Int64) -> Bool {
        let since = seq - lastCheckpointSeq
        guard since > 0 else { return false }
        return since >= checkpointEveryRecords || Date().timeIntervalSince(lastCheckpointTime) >= checkpointEverySeconds
    }

    private func writeCheckpointOnly() {
        do {
            try openIfNeeded()
            let made = try signer.checkpoint(nodeID: nodeID, seq: chain.seq, timeMicros: Self.nowMicros(), hash: chain.hash)
            try backend.append([], links: chain.emptyLinks, checkpoint: made)
            recordSuccess(seq: chain.seq)
            published(made)
        } catch {
            closeAfterFailure()
            recordFailure(String(describing: error))
        }
    }

    /// Notes a stored checkpoint and has it appended to the shippable file, off the writer's thread.
    ///
    /// The line is appended and synced on a queue of its own, in the order the checkpoints were made: the sync took
    /// 2–17 ms on the benchmark machine's disk, once 292 and once 481 ms, and on the writer's thread every call behind
    /// it waited that long (docs/performance.md, the audit trail's sixteenth round). The checkpoint is already in the
    /// store, committed with the records it covers; `flush` and `shutdown` wait for the file too.
    private func published(_ checkpoint: AuditCheckpoint) {
        lastCheckpointSeq = checkpoint.seq
        lastCheckpointTime = Date()
        shared.withLockedValue { $0.health.lastCheckpointSeq = checkpoint.seq }
        guard let checkpointFile else { return }
        checkpointFileQueue.async { [shared, logger] in
            var fileError: String?
            do {
                let output = try AuditOutput(path: checkpointFile, append: true)
                defer { try? output.close() }
                try output.write(checkpoint.jsonLine + "\n")
                try output.sync()
            } catch {
                fileError = String(describing: error)
                logger.error("audit checkpoint not appended to the checkpoint file", metadata: [
                    "file": "\(checkpointFile)", "seq": "\(checkpoint.seq)", "error": "\(fileError ?? "")",
                ])
            }
            shared.withLockedValue { $0.health.checkpointFileError = fileError }
        }
    }

    private func recordSuccess(seq: Int64) {
        let recovered: Bool = shared.withLockedValue { state in
            let wasFailing = !state.health.isHealthy
            state.health.isHealthy = true
            state.health.consecutiveFailures = 0
            state.health.lastSeq = seq
            return wasFailing
        }
        failing.store(false, ordering: .relaxed)
        if recovered { logger.notice("audit store writable again; calls are accepted", metadata: ["seq": "\(seq)"]) }
    }

    private func recordFailure(_ reason: String) {
        let first: Bool = shared.withLockedValue { state in
            let wasHealthy = state.health.isHealthy
            state.health.isHealthy = false
            state.health.consecutiveFailures += 1
            state.health.lastError = reason
            state.health.lastErrorTimeMicros = Self.nowMicros()
            return wasHealthy
        }
        failing.store(true, ordering: .relaxed)
        if first {
            logger.error("audit store cannot be written; calls are refused until it can", metadata: ["error": "\(reason)"])
        } else {
            logger.debug("audit write failed again", metadata: ["error": "\(reason)"])
        }
    }

    static func nowMicros() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Runs `body` on the worker with the writer's own SQLite connection; tests use it to make the store read-only
    /// or full (`PRAGMA query_only`, `PRAGMA max_page_count`), conditions only that connection sees.
    func withWriterConnection<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            worker.async {
                continuation.resume(with: Result {
                    try self.openIfNeeded()
                    guard let database = (self.backend as? AuditSQLiteBackend)?.database else {
                        throw AuditError.unavailable("not a SQLite audit store")
                    }
                    return try database.writeWithoutTransaction { try body($0) }
                })
            }
        }
    }
}
