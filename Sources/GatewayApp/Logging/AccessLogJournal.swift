import GatewayCore
import GatewayProxy
import Logging
import NIOCore

/// A call journal that writes one structured log line per outcome or refusal: what an SRE greps at 3 a.m.
///
/// It never fails a call, so it is not an audit trail; the durable, chained audit writer is a separate journal.
public struct AccessLogJournal: CallJournal {
    private let logger: Logger
    /// Set when the logger writes through `JSONLogHandler`: the record itself is queued and its line is built on
    /// the log writer's thread, so the event loop builds no metadata dictionary.
    private let direct: (label: String, metadata: Logger.Metadata)?

    /// Logs through `logger`.
    public init(logger: Logger) {
        self.logger = logger
        if let handler = logger.handler as? JSONLogHandler {
            direct = (logger.label, handler.metadata)
        } else {
            direct = nil
        }
    }

    /// The access line has no body hashes.
    public var recordsBodyHashes: Bool { false }

    /// A log line is queued, not made durable before the call goes on.
    public var isDurable: Bool { false }

    /// Logs outcomes and refusals; intents are not logged (the outcome line carries everything).
    public func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        log(record)
        return eventLoop.makeSucceededVoidFuture()
    }

    /// Logs as `record(_:on:)` does and tells `waiter` at once: a log line is never waited for.
    public func record(_ record: CallRecord, on eventLoop: any EventLoop, waiter: any JournalWaiter) {
        log(record)
        waiter.journaled(.success(()), phase: record.phase)
    }

    /// Only outcomes and refusals, and only while the level lets `info` lines through.
    public func wouldRecord(phase: CallRecord.Phase) -> Bool { phase != .intent && logger.logLevel <= .info }

    private func log(_ record: CallRecord) {
        // The level is checked before anything is built: at `warning` a call costs nothing here.
        guard wouldRecord(phase: record.phase) else { return }
        if let direct {
            JSONLogHandler.logCall(record, label: direct.label, metadata: direct.metadata)
        } else {
            logger.info("call", metadata: Logger.Metadata(uniqueKeysWithValues: AccessLogFields.fields(of: record)))
        }
    }
}

/// The fields of a call's access line, in key order (the order `JSONLogFormat` writes metadata in).
enum AccessLogFields {
    /// The line's message.
    static let message: Logger.Message = "call"

    static func fields(of record: CallRecord) -> [(key: String, value: Logger.Metadata.Value)] {
        var fields: [(key: String, value: Logger.Metadata.Value)] = []
        fields.reserveCapacity(16)
        // `.string` values share the record's strings; interpolating them would copy each one.
        if let caller = record.facts.callerID { fields.append(("caller", .string(caller))) }
        if let code = record.gatewayErrorCode { fields.append(("gateway_error", .string(code))) }
        if let code = record.klarnaErrorCode { fields.append(("klarna_error", .string(code))) }
        if let merchant = record.facts.merchantID { fields.append(("merchant", .string(merchant))) }
        fields.append(("method", .string(record.method)))
        if let operation = record.facts.operation { fields.append(("operation", .string(operation.id))) }
        if let partner = record.facts.partnerID { fields.append(("partner", .string(partner))) }
        fields.append(("path", .string(record.path)))
        fields.append(("phase", .string(record.phase.rawValue)))
        if let rule = record.rateLimitRule { fields.append(("rate_limit_rule", .string(rule))) }
        if let release = record.facts.release { fields.append(("release", .string(release))) }
        fields.append(("request_id", .string(record.requestID)))
        if let span = record.trace?.spanIDHex { fields.append(("span_id", .string(span))) }
        fields.append(("status", .string(String(record.status ?? 0))))
        if let trace = record.trace { fields.append(("trace_id", .string(trace.traceIDHex))) }
        if let latency = record.upstreamLatencyMicros { fields.append(("upstream_us", .string(String(latency)))) }
        return fields
    }
}
