import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// The response half of a call: Klarna's answer is held until its outcome record is durable, then released to
/// the caller (or streamed past the hold limit, the outcome following its last byte).
extension GatewayRequestHandler {
    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let context, let call, connection != nil else { return }
        let now = UpstreamClock.now
        switch part {
        case .head(let head):
            call.machine.responseHead(keepAlive: head.isKeepAlive, now: now)
            call.trace.attemptEvent(.firstByte)
            call.record.status = Int(head.status.code)
            call.retryAfter = Self.retryAfter(head.headers)
            learnQuota(from: head, wait: call.retryAfter)
            if let sent = call.upstreamSent { call.record.upstreamLatencyMicros = (NIODeadline.now() - sent).nanoseconds / 1000 }
            var headers = HTTPHeaders()
            headers.reserveCapacity(head.headers.count + 3)
            for (name, value) in head.headers where !HopByHop.isResponseHopByHop(name) {
                headers.add(name: name, value: value)
            }
            headers.add(name: "Klarna-Gateway-Request-Id", value: call.requestID)
            if let key = call.generatedKey { headers.add(name: IdempotencyKeys.gatewayHeader, value: key) }
            if !isHTTP2 && !call.machine.keepAlive { headers.add(name: "Connection", value: "close") }
            call.heldHead = HTTPResponseHead(version: .http1_1, status: head.status, headers: headers)
        case .body(let buffer):
            call.responseBytes += buffer.readableBytes
            if runtime.hashesBodies { CallState.hash(buffer, into: &call.responseHash) }
            if call.record.status.map({ $0 >= 400 }) == true && call.errorProbe.count < 4096 {
                call.errorProbe += buffer.readableBytesView.prefix(4096 - call.errorProbe.count)
            }
            perform(call.machine.responseBody(bytes: buffer.readableBytes, now: now), call: call, context: context, body: buffer)
        case .end(let trailers):
            (call.record.klarnaErrorCode, call.record.klarnaErrorID) = KlarnaErrorBody.codes(in: call.errorProbe)
            call.trailers = trailers
            call.trace.attemptEnded(status: call.record.status)
            let answer = AttemptFailure.answered(status: call.record.status ?? 0, klarnaErrorCode: call.record.klarnaErrorCode, retryAfter: call.retryAfter)
            perform(call.machine.responseEnded(answer, now: now) { self.decideRetry($0, attempt: $1, repeatable: $2, deadline: $3, now: now) }, call: call, context: context)
        }
    }

    func upstreamFailed(_ error: any Error) {
        guard let context, let call, connection != nil else { return }
        if !call.machine.answerStarted {
            runtime.logger.warning(
                "upstream exchange failed",
                metadata: call.logMetadata(["attempt": "\(call.machine.attempts)", "sent": "\(call.machine.attemptSent)", "error": "\(error)"]))
        }
        call.trace.attemptEnded(failure: "exchange failed")
        let now = UpstreamClock.now
        perform(call.machine.upstreamFailed(now: now) { self.decideRetry($0, attempt: $1, repeatable: $2, deadline: $3, now: now) }, call: call, context: context)
    }

    /// Writes the outcome record; the answer is released only once it is durable, so a caller never holds a
    /// response the audit trail lacks.
    func journalOutcome(call: CallState, context: ChannelHandlerContext) {
        call.bodyParts.removeAll()
        call.record.responseBodyBytes = call.responseBytes
        if runtime.hashesBodies { call.record.responseBodySHA256 = CallState.hex(of: call.responseHash) }
        call.trace.promoteIfError(runtime.tracing, record: call.record)
        call.record.trace = call.trace.identity
        if runtime.journalIsDurable { call.trace.journalStarted(CallTracing.Name.auditOutcome) }
        call.record.phase = .outcome
        call.record.timeMicros = CallState.nowMicros()
        journal(call: call, context: context)
    }

    /// Sends the held head and body to the caller; from here on the answer streams.
    func release(_ call: CallState, context: ChannelHandlerContext, flush: Bool = true) {
        guard let head = call.heldHead else { return }
        context.write(outbound(.head(head)), promise: nil)
        call.heldBody.forEach { context.write(wrapOutboundOut(.body(.byteBuffer($0))), promise: nil) }
        call.heldHead = nil
        call.heldBody.removeAll()
        if flush { context.flush() }
    }

    /// Klarna's own quota signals (a 429, or `X-Ratelimit-Remaining: 0`) hold the key locally until its reset,
    /// so further calls are refused here instead of spending Klarna's patience. The reset is read as the retry
    /// reads it (`Retry-After` in either form, else `X-Ratelimit-Reset`); 1 s when Klarna gave none, at most an hour.
    private func learnQuota(from head: HTTPResponseHead, wait: Int64?) {
        guard let subject = call?.rateLimitSubject else { return }
        let exhausted = head.status == .tooManyRequests || head.headers.first(name: "x-ratelimit-remaining") == "0"
        guard exhausted else { return }
        let until = Int64(NIODeadline.now().uptimeNanoseconds) + min(wait ?? 1_000_000_000, 3_600_000_000_000)
        runtime.rateLimiter.hold(subject, until: until)
    }

    /// `Retry-After` (seconds or an HTTP-date) or `X-Ratelimit-Reset` (seconds), in nanoseconds.
    static func retryAfter(_ headers: HTTPHeaders) -> Int64? {
        guard let value = headers.first(name: "retry-after") ?? headers.first(name: "x-ratelimit-reset") else { return nil }
        return RetryAfter.nanoseconds(value, nowEpochSeconds: UTCTime.now().seconds)
    }
}
