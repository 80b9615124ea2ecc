import Dispatch
import Foundation
import GRDB
import GatewayCore
import GatewayPostgres
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The audit trail's only writer: a bounded queue drained by one serial worker in group commits.
///
/// Everything queued while a batch is being written goes into the next transaction, so throughput grows with
/// load while each caller waits for at most two commits. The chain hash is computed here, in sequence order.
/// Failures fail the whole batch (the data plane then refuses those calls) and every later batch retries, so the
/// gateway resumes by itself once the store is writable again.
public final class AuditWriter: @unchecked Sendable {
    // @unchecked: `shared` is behind a lock and everything else mutable is confined to `worker`.

    /// A record encoded on the caller's thread; the writer adds seq, prev_hash and hash.
    private struct Prepared {
        let tail: String
        let values: [DatabaseValue]

        init(_ entry: AuditEntry) {
            tail = AuditCanonical.tail(entry)
            values = entry.valuesAfterSeq
        }
    }

    private struct Pending {
        var prepared: Prepared
        var promise: EventLoopPromise<Void>?
    }

    private struct Shared {
        var pending: [Pending] = []
        var scheduled = false
        var closed = false
        var health = AuditHealth()
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

    // Confined to `worker`.
    private let backend: any AuditBackend
    private var isOpen = false
    private var lastSeq: Int64 = 0
    private var lastHash = AuditCanonical.genesisHash
    private var lastCheckpointSeq: Int64 = 0
    private var lastCheckpointTime = Date()
    private var backlog: [Prepared] = []
    private var timer: DispatchSourceTimer?

    /// Starts a writer; the store is opened by the worker (and reopened after failures), so a missing or
    /// unwritable store makes calls fail rather than the gateway fail to start.
    ///
    /// `path` is a SQLite file or a `postgres://` URL (one chain per node id in a shared database).
    /// `retryWindow` is how long a batch keeps retrying a PostgreSQL connection that was lost before its calls are
    /// refused, so that a server restart of a few seconds holds calls instead of refusing them.
    public init(
        path: String, nodeID: String, mode: AuditDurability = .commit, signer: AuditSigner,
        checkpointEveryRecords: Int = 10_000, checkpointEverySeconds: Double = 60, checkpointFile: String? = nil,
        queueLimit: Int = 100_000, lockTimeout: TimeInterval = 2, retryWindow: TimeInterval = 5,
        logger: Logger = Logger(label: "audit")
    ) {
        if PostgresURL.isPostgresURL(path) {
            backend = AuditPostgresBackend(url: path, nodeID: nodeID, durability: mode, logger: logger)
        } else {
            backend = AuditSQLiteBackend(path: path, durability: mode, lockTimeout: lockTimeout)
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
        shared.withLockedValue { $0.health }
    }

    /// Queues a record; in `commit` and `fsync` modes the future succeeds once the batch holding it committed,
    /// in `async` mode once it is queued. It fails at once when the queue is full or the writer is shut down,
    /// and in `async` mode while the store is failing.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let prepared = Prepared(AuditEntry(record, nodeID: nodeID))
        let promise = eventLoop.makePromise(of: Void.self)
        let waits = mode != .async
        let decision: Result<Bool, AuditError> = shared.withLockedValue { state in
            if state.closed { return .failure(.shutDown) }
            if !waits, !state.health.isHealthy {
                return .failure(.unavailable(state.health.lastError ?? "previous batch failed"))
            }
            if state.pending.count >= queueLimit {
                state.health.queueFullRefusals += 1
                return .failure(.queueFull(limit: queueLimit))
            }
            state.pending.append(Pending(prepared: prepared, promise: waits ? promise : nil))
            state.health.queueDepth = state.pending.count
            if state.scheduled { return .success(false) }
            state.scheduled = true
            return .success(true)
        }
        switch decision {
        case .failure(let error):
            promise.fail(error)
        case .success(let schedule):
            if schedule { worker.async { self.drain() } }
            if !waits { promise.succeed(()) }
        }
        return promise.futureResult
    }

    /// Returns once everything queued before the call has been written (or has failed).
    public func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            worker.async {
                self.drain()
                if !self.backlog.isEmpty { self.write([]) }
                continuation.resume()
            }
        }
    }

    /// Refuses new records, writes what is queued, signs a final checkpoint and closes the store.
    public func shutdown() async {
        shared.withLockedValue { $0.closed = true }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            worker.async {
                self.drain()
                if !self.backlog.isEmpty { self.write([]) }
                if self.lastSeq > self.lastCheckpointSeq { self.writeCheckpointOnly() }
                self.timer?.cancel()
                self.timer = nil
                self.backend.close()
                self.isOpen = false
                continuation.resume()
            }
        }
    }

    // MARK: - Worker

    private func drain() {
        while true {
            let batch: [Pending]? = shared.withLockedValue { state in
                guard !state.pending.isEmpty else {
                    state.scheduled = false
                    return nil
                }
                defer {
                    state.pending.removeAll(keepingCapacity: true)
                    state.health.queueDepth = 0
                }
                return state.pending
            }
            guard let batch else { return }
            write(batch)
        }
    }

    private func tick() {
        if !backlog.isEmpty {
            write([])
        } else if !isOpen {
            // A server store that failed is probed here, so that health (and `/readyz`) recovers even when no call
            // arrives to try it: a load balancer stops sending calls to a gateway that is not ready.
            do {
                try openIfNeeded()
                recordSuccess(seq: lastSeq)
            } catch {
                closeAfterFailure()
                recordFailure(String(describing: error))
            }
        } else if lastSeq > lastCheckpointSeq, Date().timeIntervalSince(lastCheckpointTime) >= checkpointEverySeconds {
            writeCheckpointOnly()
        }
    }

    private func openIfNeeded() throws {
        if isOpen { return }
        let head = try backend.open()
        isOpen = true
        lastSeq = head.lastSeq
        lastHash = head.lastHash
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

    /// Writes the async backlog and `batch` in one transaction, checkpointing when due.
    ///
    /// While the store was healthy, a failure on a store that reconnects (PostgreSQL) is retried for
    /// `retryWindow` before the batch fails; meanwhile new records queue up to `queueLimit`. Once failing, each
    /// batch is tried once, so calls are refused quickly until the store is back.
    private func write(_ batch: [Pending]) {
        var entries = backlog
        entries.reserveCapacity(backlog.count + batch.count)
        for pending in batch { entries.append(pending.prepared) }
        let started = Date()
        var delay = 0.05
        var outcome = attempt(entries)
        while case .failure = outcome, backend.closesAfterFailure, health.isHealthy,
            Date().timeIntervalSince(started) + delay <= retryWindow
        {
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 1)
            outcome = attempt(entries)
        }
        switch outcome {
        case .failure(let error):
            let reason = String(describing: error)
            if mode == .async { backlog = entries }
            // Health first, so whoever sees the failed future also sees why.
            recordFailure(reason)
            for pending in batch { pending.promise?.fail(AuditError.unavailable(reason)) }
        case .success(let checkpoint):
            backlog = []
            recordSuccess(seq: lastSeq)
            for pending in batch { pending.promise?.succeed(()) }
            if let checkpoint { published(checkpoint) }
        }
    }

    /// One try at appending `entries` after the chain head; advances the head only when the store committed.
    private func attempt(_ entries: [Prepared]) -> Result<AuditCheckpoint?, any Error> {
        do {
            try openIfNeeded()
            var seq = lastSeq
            var hash = lastHash
            var rows: [AuditChainedRow] = []
            rows.reserveCapacity(entries.count)
            for entry in entries {
                seq += 1
                let previous = hash
                hash = AuditCanonical.chainHash(previous: previous, seq: seq, tail: entry.tail)
                rows.append(AuditChainedRow(seq: seq, values: entry.values, prevHash: previous, hash: hash))
            }
            let checkpoint = checkpointDue(at: seq)
                ? try signer.checkpoint(nodeID: nodeID, seq: seq, timeMicros: Self.nowMicros(), hash: hash) : nil
            try backend.append(rows, checkpoint: checkpoint)
            lastSeq = seq
            lastHash = hash
            return .success(checkpoint)
        } catch {
            closeAfterFailure()
            return .failure(error)
        }
    }

    private func checkpointDue(at seq: Int64) -> Bool {
        let since = seq - lastCheckpointSeq
        guard since > 0 else { return false }
        return since >= checkpointEveryRecords || Date().timeIntervalSince(lastCheckpointTime) >= checkpointEverySeconds
    }

    private func writeCheckpointOnly() {
        do {
            try openIfNeeded()
            let made = try signer.checkpoint(nodeID: nodeID, seq: lastSeq, timeMicros: Self.nowMicros(), hash: lastHash)
            try backend.append([], checkpoint: made)
            recordSuccess(seq: lastSeq)
            published(made)
        } catch {
            closeAfterFailure()
            recordFailure(String(describing: error))
        }
    }

    /// Notes a stored checkpoint and appends it to the shippable file.
    private func published(_ checkpoint: AuditCheckpoint) {
        lastCheckpointSeq = checkpoint.seq
        lastCheckpointTime = Date()
        var fileError: String?
        if let checkpointFile {
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
        }
        shared.withLockedValue {
            $0.health.lastCheckpointSeq = checkpoint.seq
            $0.health.checkpointFileError = fileError
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
