import GatewayCore
import GatewayProxy
import Logging
import NIOCore

/// A call journal that writes one structured log line per outcome or refusal: what an SRE greps at 3 a.m.
///
/// It never fails a call, so it is not an audit trail; the durable, chained audit writer is a separate journal.
public struct AccessLogJournal: CallJournal {
    private let logger: Logger

    /// Logs through `logger`.
    public init(logger: Logger) { self.logger = logger }

    /// Logs outcomes and refusals; intents are not logged (the outcome line carries everything).
    public func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard record.phase != .intent else { return eventLoop.makeSucceededVoidFuture() }
        var metadata: Logger.Metadata = [
            "request_id": "\(record.requestID)", "phase": "\(record.phase.rawValue)", "method": "\(record.method)",
            "path": "\(record.path)", "status": "\(record.status ?? 0)",
        ]
        if let caller = record.facts.callerID { metadata["caller"] = "\(caller)" }
        if let merchant = record.facts.merchantID { metadata["merchant"] = "\(merchant)" }
        if let partner = record.facts.partnerID { metadata["partner"] = "\(partner)" }
        if let operation = record.facts.operation { metadata["operation"] = "\(operation.id)" }
        if let release = record.facts.release { metadata["release"] = "\(release)" }
        if let rule = record.rateLimitRule { metadata["rate_limit_rule"] = "\(rule)" }
        if let code = record.gatewayErrorCode { metadata["gateway_error"] = "\(code)" }
        if let code = record.klarnaErrorCode { metadata["klarna_error"] = "\(code)" }
        if let latency = record.upstreamLatencyMicros { metadata["upstream_us"] = "\(latency)" }
        logger.info("call", metadata: metadata)
        return eventLoop.makeSucceededVoidFuture()
    }
}
