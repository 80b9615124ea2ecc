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
    /// Whether recording `record` would do anything: a journal that follows another in a chain is not told of a
    /// record it would drop, so the chain makes nothing to tell it with (an access log at `warning`, an intent).
    func wouldRecord(_ record: CallRecord) -> Bool
}

extension CallJournal {
    /// A journal keeps the bodies' hashes unless it says otherwise.
    public var recordsBodyHashes: Bool { true }

    /// A journal records everything unless it says otherwise.
    public func wouldRecord(_ record: CallRecord) -> Bool { true }

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
