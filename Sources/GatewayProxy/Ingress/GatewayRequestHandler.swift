import Crypto
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// Serves one HTTP/1.1 connection's requests in turn, or one HTTP/2 stream: runs the pure stages, journals the
/// call, forwards it over a pooled mTLS connection and relays the answer.
///
/// The upstream channel runs on this channel's event loop, so response parts arrive as direct calls. Request
/// body parts that arrive while the journal and the upstream connection are pending are buffered; the body is
/// bounded by the ingress limit, so the buffer is too.
final class GatewayRequestHandler: ChannelInboundHandler, UpstreamExchangeDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Phase {
        /// Waiting for a request head.
        case idle
        /// The journal or the upstream connection is pending; body parts are buffered.
        case pending
        /// The request is on its way upstream.
        case forwarding(UpstreamConnection)
        /// A response was sent (a refusal or a relayed answer); the rest of the request body is discarded.
        case finishing
    }

    let runtime: ProxyRuntime
    let isHTTP2: Bool
    var phase: Phase = .idle
    var call: CallState?
    var context: ChannelHandlerContext?
    private var cachedFingerprint: String??
    private var cachedClientAddress: String??

    init(runtime: ProxyRuntime, isHTTP2: Bool) {
        self.runtime = runtime
        self.isHTTP2 = isHTTP2
    }

    /// Per-call bookkeeping.
    final class CallState {
        let requestID: String
        let started = NIODeadline.now()
        let rawTarget: String
        let method: String
        let keepAlive: Bool
        var record: CallRecord
        var plan: ForwardPlan?
        /// Every request body part so far, kept until the call ends so a retry can send the body again (bounded
        /// by the body limit).
        var bodyParts: [ByteBuffer] = []
        var chunked = false
        var requestEnded = false
        var requestBytes = 0
        /// Started on the first body byte, and only when a journal keeps the hashes: a hash state is an allocation.
        var requestHash: SHA256?
        var responseHash: SHA256?
        var responseBytes = 0
        /// Klarna's response head has arrived.
        var responseStarted = false
        var responseEnded = false
        /// Bytes of a response have gone to the caller; before this, the gateway can still answer with its own error.
        var released = false
        /// Klarna's answer, held until its outcome record is written (up to the hold limit).
        var heldHead: HTTPResponseHead?
        var heldBody: [ByteBuffer] = []
        var heldBytes = 0
        var upstreamKeepAlive = true
        var upstreamSent: NIODeadline?
        var errorProbe: [UInt8] = []
        var rateLimitSubject: RateLimitSubject?
        /// The byte stream below this call went bad: close after the refusal instead of reading on.
        var closeAfterRefusal = false
        /// The answer's end has been written to the caller.
        var answerWritten = false
        /// Counted in the in-flight limit.
        var admitted = false
        /// This call's timeouts (its operation family's).
        var timeouts = UpstreamTimeouts.defaults
        /// The whole call's deadline on `UpstreamClock`.
        var deadline: Int64 = 0
        /// The `Klarna-Idempotency-Key` the gateway added, if it added one.
        var generatedKey: String?
        /// Attempts started (the current attempt's number).
        var attempt = 0
        /// The current attempt's request head has been written to the connection.
        var attemptSent = false
        /// The current attempt is the breaker's half-open probe.
        var probe = false
        /// Some attempt was sent and never answered: Klarna may have acted.
        var outcomeUnknown = false
        var lastFailure: AttemptFailure?
        /// `Retry-After` / `X-Ratelimit-Reset` of the current answer, nanoseconds.
        var retryAfter: Int64?
        /// The one timer that watches every time limit of the call (total, response head, body idle): it is
        /// armed once, at the earliest moment any limit could run out, and re-armed only when it fires early.
        /// Arming and cancelling a timer per limit and per body part cost more than the checks themselves.
        var watchdog: Scheduled<Void>?
        /// When `watchdog` fires, on `UpstreamClock`.
        var watchdogAt: Int64 = .max
        /// When the current attempt's response head is due, while it is awaited.
        var headDue: Int64?
        /// When the current attempt's response head or body last arrived.
        var lastResponseRead: Int64 = 0
        var retryTimer: Scheduled<Void>?

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

        /// Stops every timer of the call.
        func cancelTimers() {
            watchdog?.cancel()
            watchdog = nil
            watchdogAt = .max
            retryTimer?.cancel()
            retryTimer = nil
        }

        init(requestID: String, head: HTTPRequestHead, clientAddress: String?) {
            self.requestID = requestID
            self.rawTarget = head.uri
            self.method = head.method.rawValue
            self.keepAlive = head.isKeepAlive
            self.record = CallRecord(
                phase: .refusal, requestID: requestID, timeMicros: CallState.nowMicros(), method: head.method.rawValue,
                path: CallRecord.recordedPath(rawTarget: head.uri, operation: nil)
            )
            self.record.clientAddress = clientAddress
        }

        static func nowMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

        /// A log line's metadata about this call: the request id, caller and merchant (as the access log names
        /// them, so an SRE can filter upstream trouble by either), and `extra`.
        func logMetadata(_ extra: Logger.Metadata) -> Logger.Metadata {
            var metadata = extra
            metadata["request_id"] = .string(requestID)
            if let caller = record.facts.callerID { metadata["caller"] = .string(caller) }
            if let merchant = record.facts.merchantID { metadata["merchant"] = .string(merchant) }
            if let operation = record.facts.operation { metadata["operation"] = .string(operation.id) }
            return metadata
        }
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): receivedHead(head, context: context)
        case .body(let buffer): receivedBody(buffer, context: context)
        case .end: receivedEnd(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The caller went away: an unfinished upstream exchange cannot be reused.
        if case .forwarding(let connection) = phase {
            connection.handler.delegate = nil
            runtime.pools.pool(for: context.eventLoop).release(connection, reusable: false)
            if let call, call.probe, let host = call.plan?.upstream.endpoint.authority {
                runtime.breakers.abandonProbe(host: host, now: UpstreamClock.now)
            }
        }
        call?.cancelTimers()
        endCall()
        phase = .finishing
        context.fireChannelInactive()
    }

    /// A framing error or stalled body in the request this handler holds: refuse it and close.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let failure = error as? IngressRequestFailure else {
            context.fireErrorCaught(error)
            return
        }
        guard let call, !call.released else {
            context.close(promise: nil)
            return
        }
        call.closeAfterRefusal = true
        abortUpstream(context: context)
        refuse(failure.error, context: context)
    }

    // MARK: - Request

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        // A pipelined request arrives from inside the previous answer's `.end` write, before `finish` resets.
        if case .finishing = phase, let call, call.requestEnded, call.responseEnded { reset() }
        guard case .idle = phase else {
            context.close(promise: nil)
            return
        }
        let call = CallState(requestID: RequestID.make(), head: head, clientAddress: clientAddress(context: context))
        call.record.callerCertificateFingerprint = clientFingerprint(context: context)
        self.call = call
        phase = .pending
        guard runtime.inFlight.enter() else {
            refuse(GatewayError(.overloaded, "The gateway is serving \(runtime.inFlight.limit) calls at once; retry shortly."), context: context)
            return
        }
        call.admitted = true
        if let refusal = checkHead(head) {
            // After a refused CONNECT the caller may already be sending tunnel bytes: close rather than parse them.
            call.closeAfterRefusal = head.method == .CONNECT
            refuse(refusal, context: context)
            return
        }
        let snapshot = runtime.snapshots.current
        let request = IngressRequest(
            method: head.method.rawValue, target: head.uri, headers: head.headers,
            clientCertificateFingerprint: call.record.callerCertificateFingerprint
        )
        switch runtime.pipeline.plan(request, requestID: call.requestID, snapshot: snapshot, today: runtime.calendarDay.today) {
        case .failure(let refusal):
            call.record.facts = refusal.facts
            call.record.path = CallRecord.recordedPath(rawTarget: head.uri, operation: refusal.facts.operation)
            refuse(refusal.error, context: context)
        case .success(let plan):
            call.plan = plan
            call.record.facts = plan.facts
            call.record.path = CallRecord.recordedPath(rawTarget: head.uri, operation: plan.facts.operation)
            call.record.credential = plan.upstream.credential
            call.record.upstreamCertificateFingerprint = plan.upstream.identity.fingerprint
            call.record.correlationID = plan.upstream.correlationID
            let callerKey = head.headers.first(name: "klarna-idempotency-key")
            call.generatedKey = IdempotencyKeys.keyToAdd(method: plan.upstream.method, existing: callerKey, enabled: runtime.resilience.addIdempotencyKeys) {
                RequestID.make()
            }
            call.record.idempotencyKey = callerKey ?? call.generatedKey
            call.timeouts = runtime.resilience.timeouts(for: plan.facts.operation?.family)
            let chunked = head.headers[canonicalForm: "transfer-encoding"].contains("chunked")
            call.chunked = chunked
            let expectsContinue = head.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
            let proceed = {
                if expectsContinue {
                    context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                }
                self.forward(call: call, context: context)
            }
            limitRate(plan, snapshot: snapshot, call: call, context: context, proceed: proceed)
        }
    }

    /// The rate-limit stage: admit, shape (forward after a wait, room already reserved) or refuse. In cluster mode
    /// a call may also wait for a lease or, shaping, for room to decide again: `since` is its first decision.
    private func limitRate(
        _ plan: ForwardPlan, snapshot: GatewaySnapshot, call: CallState, context: ChannelHandlerContext, since: Int64? = nil,
        proceed: @escaping () -> Void
    ) {
        guard let callerID = plan.facts.callerID, let environment = plan.facts.environment, let operation = plan.facts.operation else {
            proceed()
            return
        }
        let subject = RateLimitSubject(
            callerID: callerID, merchantID: plan.facts.merchantID, merchantGroups: plan.target.merchant?.record.groups ?? [],
            partnerID: plan.target.partner.record.id, environment: environment, category: operation.category,
            resolved: ResolvedRateLimits(partner: plan.target.partner.rateLimits, caller: plan.callerRateLimit)
        )
        call.rateLimitSubject = subject
        let limiter = runtime.rateLimiter
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        // Decide again, on this loop, for the same call if it is still waiting.
        let again: () -> Void = {
            guard self.call === call, case .pending = self.phase else { return }
            self.limitRate(plan, snapshot: snapshot, call: call, context: context, since: since ?? now, proceed: proceed)
        }
        let loop = context.eventLoop
        var wake: (@Sendable () -> Void)?
        if limiter.isClustered {
            let bound = NIOLoopBound(again, eventLoop: loop)
            wake = { loop.execute { bound.value() } }
        }
        switch limiter.decide(subject, policy: snapshot.rateLimits, now: now, since: since, wake: wake) {
        case .admit:
            proceed()
        case .delay(let nanoseconds):
            loop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) {
                limiter.dequeued()
                guard self.call === call, case .pending = self.phase else { return }
                proceed()
            }
        case .retry(let nanoseconds):
            loop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) {
                limiter.dequeued()
                again()
            }
        case .park:
            break
        case .refuse(let error, let rule):
            call.record.rateLimitRule = rule.rawValue
            refuse(error, context: context)
        }
    }

    /// Checks what the stages cannot: protocol version, header sizes, framing, declared body size.
    private func checkHead(_ head: HTTPRequestHead) -> GatewayError? {
        IngressHeadCheck(
            maxHeaderBytes: runtime.limits.maxHeaderBytes, maxHeadersTotalBytes: runtime.limits.maxHeadersTotalBytes,
            maxBodyBytes: runtime.limits.maxBodyBytes
        ).refusal(method: head.method.rawValue, versionMajor: head.version.major, versionMinor: head.version.minor, isHTTP2: isHTTP2, headers: head.headers)
    }

    private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let call else { return }
        call.requestBytes += buffer.readableBytes
        let tooLarge = call.requestBytes > runtime.limits.maxBodyBytes
        switch phase {
        case .idle:
            return
        case .finishing:
            // Discarding the rest of a refused request's body, but no more than the limit allows. The close waits
            // for the answer: closing first would send the caller an end of stream instead of its answer.
            if tooLarge {
                if call.answerWritten { context.close(promise: nil) } else { call.closeAfterRefusal = true }
            }
        case .pending, .forwarding:
            if tooLarge {
                abortUpstream(context: context)
                refuse(GatewayError(.payloadTooLarge, "The body is larger than \(runtime.limits.maxBodyBytes) bytes."), context: context)
                return
            }
            if runtime.hashesBodies { CallState.hash(buffer, into: &call.requestHash) }
            call.bodyParts.append(buffer)
            if case .forwarding(let connection) = phase {
                connection.channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            }
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        guard let call else { return }
        call.requestEnded = true
        call.record.requestBodyBytes = call.requestBytes
        if runtime.hashesBodies { call.record.requestBodySHA256 = CallState.hex(of: call.requestHash) }
        switch phase {
        case .forwarding(let connection):
            connection.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        case .finishing:
            if call.responseEnded { reset() }
        case .idle, .pending:
            break
        }
    }

    // MARK: - Responses


    /// Answers with a gateway error in Klarna's shape, journals the refusal, and discards the rest of the body.
    func refuse(_ error: GatewayError, context: ChannelHandlerContext) {
        guard let call else { return }
        call.cancelTimers()
        guard !call.released else {
            context.close(promise: nil)
            return
        }
        call.released = true
        call.responseStarted = true
        call.responseEnded = true
        phase = .finishing
        call.record.phase = .refusal
        call.record.timeMicros = CallState.nowMicros()
        call.record.status = error.status
        call.record.gatewayErrorCode = error.code.rawValue
        // A body still arriving is read and discarded (it is bounded by the body limit), so the connection stays
        // usable; an oversize body or a caller that asked for it closes the connection.
        let close = !isHTTP2 && (call.closeAfterRefusal || !call.keepAlive || (!call.requestEnded && error.code == .payloadTooLarge))
        let response = RefusalResponse(error, requestID: call.requestID, generatedKey: call.generatedKey, close: close)
        let record = call.record
        runtime.journal.record(record, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            // A refusal is sent whether or not its record could be written: refusing forwards nothing.
            self.runtime.metrics.observe(record, started: call.started)
            guard self.context != nil else { return }
            if !self.isHTTP2 && call.method == "CONNECT" { RefusalResponse.unpairEncoder(of: context.pipeline.syncOperations) }
            let written = response.write(to: context, wrap: self.wrapOutboundOut)
            call.answerWritten = true
            if close || call.closeAfterRefusal {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                self.finish(call: call, written: written, context: context)
            }
        }
    }

    /// After the response's end: close if the caller asked, else wait for the request's end to go idle.
    func finish(call: CallState, written: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        if (!isHTTP2 && !call.keepAlive) || call.closeAfterRefusal {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        if call.requestEnded && self.call === call { reset() }
    }

    func reset() {
        endCall()
        call = nil
        phase = .idle
    }

    /// Gives the call's in-flight place back, once.
    private func endCall() {
        guard let call, call.admitted else { return }
        call.admitted = false
        runtime.inFlight.leave()
    }

    /// The caller's IP address, formatted once per connection (or stream) rather than once per request.
    private func clientAddress(context: ChannelHandlerContext) -> String? {
        if let cached = cachedClientAddress { return cached }
        let address = context.channel.remoteAddress?.ipAddress
        cachedClientAddress = .some(address)
        return address
    }

    /// The fingerprint of the verified client certificate, read once per connection.
    private func clientFingerprint(context: ChannelHandlerContext) -> String? {
        if let cached = cachedFingerprint { return cached }
        // An HTTP/2 stream's parent is its connection, which holds TLS; an HTTP/1 connection's parent is the
        // listening socket (on another loop), so it must not be asked.
        let channel = isHTTP2 ? (context.channel.parent ?? context.channel) : context.channel
        let certificate = try? channel.pipeline.syncOperations.nioSSL_peerCertificate()
        let fingerprint = (try? certificate?.toDERBytes()).map { Hex.encode(SHA256.hash(data: $0)) }
        cachedFingerprint = .some(fingerprint)
        return fingerprint
    }
}

/// Reads Klarna's `error_code` and `error_id` from an error body for the audit record, without a JSON parser on
/// the hot path: the fields are flat strings in Klarna's error shape.
enum KlarnaErrorBody {
    /// The two fields, or nil where absent.
    static func codes(in body: [UInt8]) -> (String?, String?) {
        guard !body.isEmpty else { return (nil, nil) }
        let text = String(decoding: body, as: UTF8.self)
        return (field("error_code", in: text), field("error_id", in: text))
    }

    private static func field(_ name: String, in text: String) -> String? {
        guard let key = text.range(of: "\"\(name)\"") else { return nil }
        let rest = text[key.upperBound...].drop { $0 == " " || $0 == ":" || $0 == "\t" }
        guard rest.first == "\"" else { return nil }
        let value = rest.dropFirst().prefix { $0 != "\"" }
        return value.count <= 128 ? String(value) : nil
    }
}
