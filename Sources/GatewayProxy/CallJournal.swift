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
}
