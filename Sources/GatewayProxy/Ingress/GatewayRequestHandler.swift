import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1

/// Serves one HTTP/1.1 connection's requests in turn, or one HTTP/2 stream: runs the pure stages, then feeds
/// each call's events to its `CallMachine` and carries out the actions it returns (journal, forward over a pooled
/// mTLS connection, relay, refuse).
///
/// The upstream channel runs on this channel's event loop, so response parts arrive as direct calls. Request
/// body parts that arrive while the journal and the upstream connection are pending are buffered; the body is
/// bounded by the ingress limit, so the buffer is too.
final class GatewayRequestHandler: ChannelInboundHandler, UpstreamExchangeDelegate, CallDeadlineOwner {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let runtime: ProxyRuntime
    let isHTTP2: Bool
    /// An HTTP/2 stream's connection, told when the stream closes.
    private let lifetime: HTTP2ConnectionLifetimeHandler?
    /// The call being served; nil while waiting for a request head.
    var call: CallState?
    /// The upstream connection the call's current attempt holds.
    var connection: UpstreamConnection?
    /// Reading is paused on that connection (the caller cannot take more) or on the caller's side (Klarna's
    /// connection cannot take more): flow control between the two channels, as swift-nio's connect-proxy glue does.
    private var upstreamPaused = false
    private var callerPaused = false
    var context: ChannelHandlerContext?
    /// The caller's address and certificate: given to an HTTP/2 stream by its connection, read on the first
    /// request of an HTTP/1 connection.
    private var caller: CallerConnection?
    /// Token answers: the event loop's cache, shared with every other connection on the loop.
    private var authentication = CallerAuthentication.Memo()
    /// The event loop's memo (snapshot, date, breakers, metrics series), shared with every other connection on the
    /// loop; a handler of its own on a loop outside the gateway's group (a test's). Set when the handler is added.
    var loopMemo: LoopMemo!
    /// A request head was read and its end has not been: a parse error belongs to that request's call.
    var requestOpen = false
    /// A final answer's head was written and its end has not been: a parse error can only cut the connection.
    var answering = false

    init(runtime: ProxyRuntime, isHTTP2: Bool, lifetime: HTTP2ConnectionLifetimeHandler? = nil, caller: CallerConnection? = nil) {
        self.runtime = runtime
        self.isHTTP2 = isHTTP2
        self.lifetime = lifetime
        self.caller = caller
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loopMemo = runtime.loopMemos.memo(for: context.eventLoop) ?? LoopMemo(countsMetrics: false)
        authentication = CallerAuthentication.Memo(sharing: loopMemo.tokens)
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestOpen = true
            receivedHead(head, context: context)
        case .body(let buffer):
            receivedBody(buffer, context: context)
        case .end:
            requestOpen = false
            receivedEnd(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let call {
            // The caller went away: an unfinished upstream exchange cannot be reused.
            perform(call.machine.clientGone(), call: call, context: context)
        }
        endCall()
        lifetime?.streamClosed()
        context.fireChannelInactive()
    }

    /// The caller's side can take more (or no more): Klarna's connection reads only while it can.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let connection { pauseUpstream(!context.channel.isWritable, connection) }
        context.fireChannelWritabilityChanged()
    }

    /// Klarna's connection can take more of the request body (or no more): the caller's side reads only while it can.
    func upstreamWritabilityChanged(_ writable: Bool) {
        guard let context, callerPaused == writable else { return }
        callerPaused = !writable
        try? context.channel.syncOptions?.setOption(.autoRead, value: writable)
    }

    /// Stops (or resumes) reading from Klarna's connection.
    func pauseUpstream(_ pause: Bool, _ connection: UpstreamConnection) {
        guard upstreamPaused != pause else { return }
        upstreamPaused = pause
        try? connection.channel.syncOptions?.setOption(.autoRead, value: !pause)
    }

    /// An HTTP/1 parse error (`protocolError`), or a framing error or stalled body in the request this handler
    /// holds: refuse it and close.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !isHTTP2, let parserError = error as? HTTPParserError {
            protocolError(parserError, context: context)
            return
        }
        guard let failure = error as? IngressRequestFailure else {
            context.fireErrorCaught(error)
            return
        }
        requestFailed(failure.error, context: context)
    }

    /// Refuses the call this handler holds with `error` and closes (or closes at once when it holds none).
    func requestFailed(_ error: GatewayError, context: ChannelHandlerContext) {
        guard let call else {
            context.close(promise: nil)
            return
        }
        perform(call.machine.requestFailed(error), call: call, context: context)
    }

    // MARK: - Request

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        // A pipelined request arrives from inside the previous answer's `.end` write, before its finish resets.
        if let call, call.machine.isDone { reset() }
        guard call == nil else {
            context.close(promise: nil)
            return
        }
        let machine = CallMachine(
            maxBodyBytes: runtime.limits.maxBodyBytes, maxHeldResponseBytes: runtime.limits.maxHeldResponseBytes,
            isHTTP2: isHTTP2, keepAlive: head.isKeepAlive)
        let caller = self.caller ?? CallerConnection.read(context.channel)
        self.caller = caller
        let call = CallState(requestID: RequestID.make(), head: head, clientAddress: caller.address, machine: machine)
        call.record.callerCertificateFingerprint = caller.fingerprint
        self.call = call
        if let tracing = runtime.tracing {
            call.trace = CallTrace(tracing, headers: head.headers)
            call.record.trace = call.trace.identity
        }
        guard runtime.inFlight.enter() else {
            refuse(GatewayError(.overloaded, "The gateway is serving \(runtime.inFlight.limit) calls at once; retry shortly."), call: call, context: context)
            return
        }
        call.admitted = true
        if let refusal = checkHead(head) {
            // After a refused CONNECT the caller may already be sending tunnel bytes: close rather than parse them.
            let action = head.method == .CONNECT ? call.machine.requestFailed(refusal) : call.machine.refuse(refusal)
            perform(action, call: call, context: context)
            return
        }
        let snapshot = runtime.snapshots.current(memo: loopMemo.snapshot)
        let request = IngressRequest(
            method: head.method.rawValue, target: head.uri, headers: head.headers,
            clientCertificateFingerprint: call.record.callerCertificateFingerprint
        )
        // A traced call's correlation id is its trace id (docs/observability.md).
        let correlationID = call.trace.identity?.traceIDHex
        switch runtime.pipeline.plan(
            request, requestID: call.requestID, snapshot: snapshot, today: loopMemo.calendarDay.today, correlationID: correlationID,
            memo: &authentication
        ) {
        case .failure(let refusal):
            call.record.facts = refusal.facts
            call.record.path = CallRecord.recordedPath(rawTarget: head.uri, operation: refusal.facts.operation)
            refuse(refusal.error, call: call, context: context)
        case .success(var plan):
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
            if let key = call.generatedKey { plan.addUpstreamHeader(IdempotencyKeys.header, key) }
            call.plan = plan
            call.chunked = head.headers[canonicalForm: "transfer-encoding"].contains("chunked")
            call.expectsContinue = head.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
            limitRate(plan, snapshot: snapshot, call: call, context: context)
        }
    }

    /// The rate-limit stage: admit, shape (forward after a wait, room already reserved) or refuse. In cluster mode
    /// a call may also wait for a lease or, shaping, for room to decide again: `since` is its first decision.
    private func limitRate(_ plan: ForwardPlan, snapshot: GatewaySnapshot, call: CallState, context: ChannelHandlerContext, since: Int64? = nil) {
        guard let callerID = plan.facts.callerID, let environment = plan.facts.environment, let operation = plan.facts.operation else {
            admit(call, context: context)
            return
        }
        // Read once: each `plan.target` copies the target out of the plan's box, a reference count per field.
        let target = plan.target
        let partner = target.partner
        let subject = RateLimitSubject(
            callerID: callerID, merchantID: plan.facts.merchantID, merchantGroups: target.merchant?.record.groups ?? [],
            partnerID: partner.record.id, environment: environment, category: operation.category,
            resolved: ResolvedRateLimits(partner: partner.rateLimits, caller: plan.callerRateLimit)
        )
        call.rateLimitSubject = subject
        call.trace.rateLimitStarted()
        let limiter = runtime.rateLimiter
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        let loop = context.eventLoop
        var wake: (@Sendable () -> Void)?
        if limiter.isClustered {
            // Decide again, on this loop, for the same call if it is still waiting.
            let bound = NIOLoopBound({
                guard self.call === call, call.machine.state == .admitting else { return }
                self.limitRate(plan, snapshot: snapshot, call: call, context: context, since: since ?? now)
            }, eventLoop: loop)
            wake = { loop.execute { bound.value() } }
        }
        switch limiter.decide(subject, policy: snapshot.rateLimits, now: now, since: since, wake: wake) {
        case .admit:
            admit(call, context: context)
        case .delay(let nanoseconds):
            call.trace.rateLimitShaped(wait: nanoseconds)
            loop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) {
                limiter.dequeued()
                guard self.call === call, call.machine.state == .admitting else { return }
                self.admit(call, context: context)
            }
        case .retry(let nanoseconds):
            loop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) {
                limiter.dequeued()
                guard self.call === call, call.machine.state == .admitting else { return }
                self.limitRate(plan, snapshot: snapshot, call: call, context: context, since: since ?? now)
            }
        case .park:
            break
        case .refuse(let error, let rule):
            call.record.rateLimitRule = rule.rawValue
            call.trace.rateLimitEnded(refusedBy: rule.rawValue)
            refuse(error, call: call, context: context)
        }
    }

    /// The call passed every stage: answer `Expect: 100-continue`, then journal the intent.
    private func admit(_ call: CallState, context: ChannelHandlerContext) {
        guard let plan = call.plan else { return }
        call.trace.rateLimitEnded()
        if call.expectsContinue {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: call.version, status: .continue))), promise: nil)
        }
        let target = CallMachine.Target(
            method: plan.upstream.method, idempotencyKey: call.record.idempotencyKey, authority: plan.upstream.endpoint.authority,
            timeouts: runtime.resilience.timeouts(for: plan.facts.operation?.family))
        perform(call.machine.admitted(target), call: call, context: context)
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
        perform(call.machine.requestBody(bytes: buffer.readableBytes), call: call, context: context, body: buffer)
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        guard let call else { return }
        call.record.requestBodyBytes = call.machine.requestBytes
        if runtime.hashesBodies { call.record.requestBodySHA256 = CallState.hex(of: call.requestHash) }
        perform(call.machine.requestEnd(), call: call, context: context)
    }

    // MARK: - Actions

    /// Carries out what the call's machine decided, in the order `CallMachine.Action` gives. `body` is the part
    /// the event brought, for the steps that keep or relay it.
    func perform(_ action: CallMachine.Action, call: CallState, context: ChannelHandlerContext, body: ByteBuffer? = nil) {
        switch action.upstream {
        case .keep: break
        case .release(let reusable): dropConnection(reusable: reusable, context: context)
        case .abort:
            call.trace.attemptEnded(failure: "aborted")
            dropConnection(reusable: false, context: context)
        }
        if let report = action.breaker, let host = call.plan?.upstream.endpoint.authority {
            switch report {
            case .attemptEnded(let failed, let probe): breaker(host).record(failed: failed, probe: probe, now: UpstreamClock.now)
            case .abandonedProbe: breaker(host).abandonProbe(now: UpstreamClock.now)
            }
        }
        switch action.timers {
        case .keep: break
        case .arm(let time): armWatchdog(call: call, at: time, context: context)
        case .cancel: cancelTimers(call: call, context: context)
        }
        if action.dropHeldAnswer {
            call.heldHead = nil
            call.heldBody.removeAll()
        }
        switch action.step {
        case .none:
            break
        case .journalIntent:
            journalIntent(call: call, context: context)
        case .admitAttempt:
            admitAttempt(call: call, context: context)
        case .connect(let timeout):
            connect(call: call, timeout: timeout, context: context)
        case .send:
            send(call: call, context: context)
        case .retry(let delay, let reason):
            scheduleRetry(call: call, delay: delay, reason: reason, context: context)
        case .refuse(let error, let note):
            if let note { log(note, call: call) }
            journalRefusal(error, call: call, context: context)
        case .journalOutcome:
            journalOutcome(call: call, context: context)
        case .holdBody(let release):
            if let body {
                call.heldBody.append(body)
                if release { self.release(call, context: context) }
            }
        case .relayBody:
            if let body { context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        case .writeAnswer(let closeAfter):
            // Head, body and end leave in one flush: one write to the caller's socket per answer, not two.
            release(call, context: context, flush: false)
            let end = outbound(.end(call.trailers))
            finish(call: call, closeAfter: closeAfter, context: context) { context.writeAndFlush(end, promise: $0) }
        case .writeRefusal(let connectionClose, let closeAfter):
            writeRefusal(call: call, connectionClose: connectionClose, closeAfter: closeAfter, context: context)
        case .keepBody(let forward):
            if let body {
                if runtime.hashesBodies { CallState.hash(body, into: &call.requestHash) }
                call.bodyParts.append(body)
                if forward { connection?.channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
            }
        case .forwardEnd:
            connection?.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        case .close:
            context.close(promise: nil)
        case .finished:
            reset()
        }
    }

    /// Gives the upstream connection back (closed unless `reusable`), reading on both sides again.
    private func dropConnection(reusable: Bool, context: ChannelHandlerContext) {
        guard let connection else { return }
        pauseUpstream(false, connection)
        upstreamWritabilityChanged(true)
        self.connection = nil
        connection.handler.delegate = nil
        runtime.pools.pool(for: context.eventLoop).release(connection, reusable: reusable)
    }

    // MARK: - Refusals

    /// Ends the call with a gateway error in Klarna's shape (or cuts the connection if an answer already started).
    func refuse(_ error: GatewayError, call: CallState, context: ChannelHandlerContext) {
        perform(call.machine.refuse(error), call: call, context: context)
    }

    /// Journals the refusal; it is sent whether or not its record could be written: refusing forwards nothing.
    private func journalRefusal(_ error: GatewayError, call: CallState, context: ChannelHandlerContext) {
        call.refusal = error
        call.record.phase = .refusal
        call.record.timeMicros = CallState.nowMicros()
        call.record.status = error.status
        call.record.gatewayErrorCode = error.code.rawValue
        call.trace.promoteIfError(runtime.tracing, record: call.record)
        call.record.trace = call.trace.identity
        call.trace.attemptEnded(failure: error.code.rawValue)
        if runtime.journalIsDurable { call.trace.journalStarted(CallTracing.Name.auditRefusal) }
        journal(call: call, context: context)
    }

    private func writeRefusal(call: CallState, connectionClose: Bool, closeAfter: Bool, context: ChannelHandlerContext) {
        guard let error = call.refusal else { return }
        if !isHTTP2 && call.method == "CONNECT" { RefusalResponse.unpairEncoder(of: context.pipeline.syncOperations) }
        let response = RefusalResponse(error, requestID: call.requestID, generatedKey: call.generatedKey, close: connectionClose)
        finish(call: call, closeAfter: closeAfter, context: context) { response.write(to: context, wrap: self.outbound, promise: $0) }
    }

    /// Writes the answer's end with `write`; then closes once it is written if the machine said so, else goes idle
    /// if the request has ended (otherwise its end will). A promise is made only when the close needs one.
    private func finish(call: CallState, closeAfter: Bool, context: ChannelHandlerContext, write: (EventLoopPromise<Void>?) -> Void) {
        guard closeAfter else {
            write(nil)
            // A pipelined request may have arrived from inside that write and replaced this call.
            if self.call === call && call.machine.requestEnded { reset() }
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        write(written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func reset() {
        endCall()
        call = nil
    }

    /// Ends the call's spans and gives its in-flight place back, once.
    private func endCall() {
        guard let call else { return }
        // Tracing off (or the spans already ended) leaves nothing to finish, and handing over the record copies it.
        if call.trace.hasOpenSpans { call.trace.finish(record: call.record, generatedKey: call.generatedKey != nil) }
        guard call.admitted else { return }
        call.admitted = false
        runtime.inFlight.leave()
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
