import GatewayCore
import NIOCore

/// Where the data plane reports calls: the audit trail, the access log, metrics.
///
/// `intent` is awaited before anything is forwarded and `outcome`/`refusal` before the response is released,
/// so a journal that persists records makes the gateway fail closed: a failed future refuses the call with
/// `GATEWAY_AUDIT_UNAVAILABLE` and nothing leaves.
public protocol CallJournal: Sendable {
    /// Records the intent to forward; the call proceeds when the future succeeds.
    func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    /// Records as `record(_:on:)` does and tells `waiter`, on `eventLoop`, instead of completing a future; called
    /// on `eventLoop`. The request path's form: a call's records cost no future and no closure.
    func record(_ record: CallRecord, on eventLoop: any EventLoop, waiter: any JournalWaiter)
    /// Whether the records must carry the SHA-256 of the request and response bodies; when no journal keeps them,
    /// the data plane does not hash the bodies (the access log has no use for them).
    var recordsBodyHashes: Bool { get }
    /// Whether the journal makes records durable before it answers (an audit trail), so that a call's wait for it
    /// is worth a span of its own; a log line is not waited for and gets none.
    var isDurable: Bool { get }
    /// Whether recording a record of `phase` would do anything (an access log at `warning` drops every record,
    /// and intents always): the data plane does not hand such a record over, since handing over a call's record
    /// copies its twenty-odd references, and a chain tells no follower of one.
    func wouldRecord(phase: CallRecord.Phase) -> Bool
}

extension CallJournal {
    /// A journal keeps the bodies' hashes unless it says otherwise.
    public var recordsBodyHashes: Bool { true }

    /// A journal is durable unless it says otherwise.
    public var isDurable: Bool { true }

    /// A journal records everything unless it says otherwise.
    public func wouldRecord(phase: CallRecord.Phase) -> Bool { true }

    /// For journals that only make futures: the waiter is told when the future completes.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop, waiter: any JournalWaiter) {
        let phase = record.phase
        self.record(record, on: eventLoop).assumeIsolated().whenComplete { waiter.journaled($0, phase: phase) }
    }
}

extension Result where Success == Void {
    /// Whether a journal's future succeeded: the record is durable.
    var recorded: Bool {
        if case .success = self { true } else { false }
    }
}
