import GatewayCore
import NIOConcurrencyHelpers

/// Makes accepted events durable with group commits: events verified while a transaction is being written wait
/// for the next one, so the store sees one transaction per batch, not per event, and throughput grows with load
/// while each sender waits for at most two commits. The same shape as the audit writer's batching.
public final class WebhookIntake: Sendable {
    private struct Waiting {
        let event: NewWebhookEvent
        let continuation: CheckedContinuation<Bool, any Error>
    }

    private struct Inbox {
        var waiting: [Waiting] = []
        var writing = false
    }

    private let store: any WebhookStore
    private let inbox = NIOLockedValueBox(Inbox())
    /// Events per transaction at most, so one commit stays short.
    private let maximumBatch: Int
    /// Told after each commit that stored new events, so deliveries start without waiting for a poll.
    private let onStored: @Sendable () -> Void

    /// Makes an intake over `store`.
    public init(store: any WebhookStore, maximumBatch: Int = 512, onStored: @escaping @Sendable () -> Void = {}) {
        self.store = store
        self.maximumBatch = maximumBatch
        self.onStored = onStored
    }

    /// Stores `event`; returns true when it was new, false for a repeat of an id already stored. Throws when the
    /// store failed (the sender is then told to retry, and nothing was acknowledged).
    public func submit(_ event: NewWebhookEvent) async throws -> Bool {
        try await withCheckedThrowingContinuation { continuation in
            let start = inbox.withLockedValue { inbox in
                inbox.waiting.append(Waiting(event: event, continuation: continuation))
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
                let stored = try await store.saveWebhookEvents(batch.map(\.event))
                for (waiting, isNew) in zip(batch, stored) { waiting.continuation.resume(returning: isNew) }
                if stored.contains(true) { onStored() }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
