import GatewayCore
import GatewayProxy
import NIOCore

/// Journals in order: the first (the audit trail) decides whether the call may proceed; the rest (the access
/// log) are told only about records the first accepted.
public struct JournalChain: CallJournal {
    private let journals: [any CallJournal]

    /// Chains journals, the deciding one first.
    public init(_ journals: [any CallJournal]) { self.journals = journals }

    /// Records in each journal in turn; fails as soon as one fails.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        var future = eventLoop.makeSucceededVoidFuture()
        for journal in journals {
            future = future.flatMap { journal.record(record, on: eventLoop) }
        }
        return future
    }
}
