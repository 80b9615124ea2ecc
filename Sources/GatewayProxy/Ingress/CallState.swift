import Crypto
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1

/// One call's data as the handler holds it: its record, buffers and timers. Where the call is and what happens
/// next is `machine`'s, a value with no I/O; this class only carries what the machine's actions act on.
final class CallState {
    let requestID: String
    let started = NIODeadline.now()
    let method: String
    let version: HTTPVersion
    var machine: CallMachine
    var record: CallRecord
    var plan: ForwardPlan?
    /// Every request body part so far, kept until the call ends so a retry can send the body again (bounded by
    /// the body limit).
    var bodyParts = BodyParts()
    var chunked = false
    /// The caller sent `Expect: 100-continue`: answered when the call is admitted.
    var expectsContinue = false
    /// Started on the first body byte, and only when a journal keeps the hashes: a hash state is an allocation.
    var requestHash: SHA256?
    var responseHash: SHA256?
    var responseBytes = 0
    /// Klarna's answer, held until its outcome record is written (up to the hold limit), and its trailers.
    var heldHead: HTTPResponseHead?
    var heldBody = BodyParts()
    var trailers: HTTPHeaders?
    /// The gateway's own answer, from the moment it is decided until it is written.
    var refusal: GatewayError?
    var upstreamSent: NIODeadline?
    var errorProbe: [UInt8] = []
    var rateLimitSubject: RateLimitSubject?
    /// Counted in the in-flight limit.
    var admitted = false
    /// The `Klarna-Idempotency-Key` the gateway added, if it added one.
    var generatedKey: String?
    /// `Retry-After` / `X-Ratelimit-Reset` of the current answer, nanoseconds.
    var retryAfter: Int64?
    /// Where the call's one deadline (the machine's watchdog: total, response head, body idle) sits in its loop's
    /// `CallDeadlines`; -1 while none is armed.
    var deadlineSlot = -1
    var retryTimer: Scheduled<Void>?
    /// The call's spans (none unless tracing is on and the call is sampled).
    var trace = CallTrace()
    /// The handler waiting for this call's journal records, while `journalsInFlight` > 0 (a refusal can be
    /// journaled while the intent still is).
    var journalHandler: GatewayRequestHandler?
    var journalsInFlight = 0
    /// The call is inside `GatewayRequestHandler.journal`: an answer that arrives now came at once, and waits for the
    /// turn's end.
    var handingOver = false

    init(requestID: String, head: HTTPRequestHead, clientAddress: String?, machine: CallMachine) {
        self.requestID = requestID
        self.method = head.method.rawValue
        self.version = head.version
        self.machine = machine
        self.record = CallRecord(
            phase: .refusal, requestID: requestID, timeMicros: CallState.nowMicros(), method: head.method.rawValue,
            path: CallRecord.recordedPath(rawTarget: head.uri, operation: nil)
        )
        self.record.clientAddress = clientAddress
    }

    /// Feeds a body part into `hash`, starting it on the first byte.
    static func hash(_ buffer: ByteBuffer, into hash: inout SHA256?) {
        guard buffer.readableBytes > 0 else { return }
        if hash == nil { hash = SHA256() }
        buffer.withUnsafeReadableBytes { hash!.update(bufferPointer: $0) }
    }

    /// The lowercase hex digest of a body; the empty body's when no byte came.
    static func hex(of hash: SHA256?) -> String {
        hash.map { Hex.encode($0.finalize()) } ?? Hex.emptySHA256
    }

    /// Forgets a failed attempt's answer before the next attempt.
    func forgetAnswer() {
        heldHead = nil
        heldBody.removeAll()
        trailers = nil
        responseBytes = 0
        responseHash = nil
        errorProbe = []
        retryAfter = nil
        record.status = nil
        record.klarnaErrorCode = nil
        record.klarnaErrorID = nil
    }

    static func nowMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// A log line's metadata about this call: the request id, caller and merchant (as the access log names them,
    /// so an SRE can filter upstream trouble by either), its trace and span when traced, and `extra`.
    func logMetadata(_ extra: Logger.Metadata) -> Logger.Metadata {
        var metadata = extra
        metadata["request_id"] = .string(requestID)
        if let caller = record.facts.callerID { metadata["caller"] = .string(caller) }
        if let merchant = record.facts.merchantID { metadata["merchant"] = .string(merchant) }
        if let operation = record.facts.operation { metadata["operation"] = .string(operation.id) }
        if let identity = trace.identity {
            metadata["trace_id"] = .string(identity.traceIDHex)
            if let span = identity.spanIDHex { metadata["span_id"] = .string(span) }
        }
        return metadata
    }
}
