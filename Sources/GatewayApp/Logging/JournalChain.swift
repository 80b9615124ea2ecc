import GatewayCore
import GatewayProxy
import NIOCore

/// Journals in order: the first (the audit trail) decides whether the call may proceed; the rest (the access
/// log) are told only about records the first accepted.
public struct JournalChain: CallJournal {
    private let decider: any CallJournal
    private let followers: [any CallJournal]

    /// Chains journals, the deciding one first.
    public init(_ journals: [any CallJournal]) {
        precondition(!journals.isEmpty, "a journal chain needs at least one journal")
        decider = journals[0]
        followers = Array(journals.dropFirst())
    }

    /// Whether any journal of the chain would record a record of `phase`.
    public func wouldRecord(phase: CallRecord.Phase) -> Bool {
        decider.wouldRecord(phase: phase) || followers.contains { $0.wouldRecord(phase: phase) }
    }

    /// Whether any journal of the chain keeps the bodies' hashes.
    public var recordsBodyHashes: Bool { decider.recordsBodyHashes || followers.contains { $0.recordsBodyHashes } }

    /// The chain's answer is the decider's, so it is as durable as the decider.
    public var isDurable: Bool { decider.isDurable }

    /// Records in the deciding journal and, once it accepted, in the others; the followers' answers are not
    /// waited for (they never fail a call), so the caller's future is the decider's own: no future per follower.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let decided = decider.record(record, on: eventLoop)
        guard !followers.isEmpty else { return decided }
        let followers = self.followers
        decided.whenSuccess {
            for journal in followers { _ = journal.record(record, on: eventLoop) }
        }
        return decided
    }

    /// Records as `record(_:on:)` does; the followers are told by one object that then tells `waiter`, made only
    /// when a follower would record this record (an intent, or any record with the access log at `warning`, needs
    /// none: the decider tells `waiter` itself).
    public func record(_ record: CallRecord, on eventLoop: any EventLoop, waiter: any JournalWaiter) {
        guard followers.contains(where: { $0.wouldRecord(phase: record.phase) }) else {
            return decider.record(record, on: eventLoop, waiter: waiter)
        }
        decider.record(record, on: eventLoop, waiter: Followers(record: record, journals: followers, eventLoop: eventLoop, then: waiter))
    }

    /// Tells the followers about a record the decider accepted, then the call's own waiter.
    private final class Followers: JournalWaiter {
        let record: CallRecord
        let journals: [any CallJournal]
        let eventLoop: any EventLoop
        let then: any JournalWaiter

        init(record: CallRecord, journals: [any CallJournal], eventLoop: any EventLoop, then: any JournalWaiter) {
            self.record = record
            self.journals = journals
            self.eventLoop = eventLoop
            self.then = then
        }

        func journaled(_ result: Result<Void, any Error>, phase: CallRecord.Phase) {
            if case .success = result {
                for journal in journals { _ = journal.record(record, on: eventLoop) }
            }
            then.journaled(result, phase: phase)
        }
    }
}
