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
        // The level is checked before any metadata is built: at `warning` a call costs nothing here.
        guard record.phase != .intent, logger.logLevel <= .info else { return eventLoop.makeSucceededVoidFuture() }
        // `.string` values share the record's strings; interpolating them would copy each one.
        var metadata: Logger.Metadata = [
            "request_id": .string(record.requestID), "phase": .string(record.phase.rawValue), "method": .string(record.method),
            "path": .string(record.path), "status": .stringConvertible(record.status ?? 0),
        ]
        if let caller = record.facts.callerID { metadata["caller"] = .string(caller) }
        if let merchant = record.facts.merchantID { metadata["merchant"] = .string(merchant) }
        if let partner = record.facts.partnerID { metadata["partner"] = .string(partner) }
        if let operation = record.facts.operation { metadata["operation"] = .string(operation.id) }
        if let release = record.facts.release { metadata["release"] = .string(release) }
        if let rule = record.rateLimitRule { metadata["rate_limit_rule"] = .string(rule) }
        if let code = record.gatewayErrorCode { metadata["gateway_error"] = .string(code) }
        if let code = record.klarnaErrorCode { metadata["klarna_error"] = .string(code) }
        if let latency = record.upstreamLatencyMicros { metadata["upstream_us"] = .stringConvertible(latency) }
        logger.info("call", metadata: metadata)
        return eventLoop.makeSucceededVoidFuture()
    }
}
