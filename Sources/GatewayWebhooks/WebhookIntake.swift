import GatewayCore
import NIOConcurrencyHelpers

/// Writes items to the store in group commits: items submitted while a transaction is being written wait for the
/// next one, so the store sees one transaction per batch, not per item, and throughput grows with load while each
/// submitter waits for at most two commits. The audit writer's shape, for the webhook path's two writers: the
/// intake (new events) and the worker's outcomes.
final class GroupCommit<Item: Sendable, Outcome: Sendable>: Sendable {
    private struct Waiting {
        let item: Item
        let continuation: CheckedContinuation<Outcome, any Error>
    }

    private struct Inbox {
        var waiting: [Waiting] = []
        var writing = false
    }

    private let inbox = NIOLockedValueBox(Inbox())
    /// Items per transaction at most, so one commit stays short.
    private let maximumBatch: Int
    /// Writes one batch; returns one outcome per item, in order.
    private let commit: @Sendable ([Item]) async throws -> [Outcome]

    init(maximumBatch: Int = 512, commit: @escaping @Sendable ([Item]) async throws -> [Outcome]) {
        self.maximumBatch = maximumBatch
        self.commit = commit
    }

    /// Writes `item` with the next batch; throws what the batch's transaction threw.
    func submit(_ item: Item) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let start = inbox.withLockedValue { inbox in
                inbox.waiting.append(Waiting(item: item, continuation: continuation))
                if inbox.writing { return false }
                inbox.writing = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch: [Waiting] = inbox.withLockedValue { inbox in
                let taken = Array(inbox.waiting.prefix(maximumBatch))
                inbox.waiting.removeFirst(taken.count)
                if taken.isEmpty { inbox.writing = false }
                return taken
            }
            guard !batch.isEmpty else { return }
            do {
                let outcomes = try await commit(batch.map(\.item))
                for (waiting, outcome) in zip(batch, outcomes) { waiting.continuation.resume(returning: outcome) }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}

/// Makes accepted events durable, in group commits (`GroupCommit`), and wakes the delivery worker after each commit
/// that stored something new.
public final class WebhookIntake: Sendable {
    private let writer: GroupCommit<NewWebhookEvent, Bool>

    /// Makes an intake over `store`; `onStored` runs after each commit that stored a new event.
    public init(store: any WebhookStore, maximumBatch: Int = 512, onStored: @escaping @Sendable () -> Void = {}) {
        writer = GroupCommit(maximumBatch: maximumBatch) { events in
            let stored = try await store.saveWebhookEvents(events)
            if stored.contains(true) { onStored() }
            return stored
        }
    }

    /// Stores `event`; returns true when it was new, false for a repeat of an id already stored. Throws when the
    /// store failed (the sender is then told to retry, and nothing was acknowledged).
    public func submit(_ event: NewWebhookEvent) async throws -> Bool {
        try await writer.submit(event)
    }
}
