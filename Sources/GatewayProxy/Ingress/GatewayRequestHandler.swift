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

    private enum Phase {
        /// Waiting for a request head.
        case idle
        /// The journal or the upstream connection is pending; body parts are buffered.
        case pending
        /// The request is on its way upstream.
        case forwarding(UpstreamConnection)
        /// A response was sent (a refusal or a relayed answer); the rest of the request body is discarded.
        case finishing
    }

    private let runtime: ProxyRuntime
    private let isHTTP2: Bool
    private var phase: Phase = .idle
    private var call: CallState?
    private var context: ChannelHandlerContext?
    private var cachedFingerprint: String??

    init(runtime: ProxyRuntime, isHTTP2: Bool) {
        self.runtime = runtime
        self.isHTTP2 = isHTTP2
    }

    /// Per-call bookkeeping.
    private final class CallState {
        let requestID: String
        let started = NIODeadline.now()
        let rawTarget: String
        let method: String
        let keepAlive: Bool
        var record: CallRecord
        var plan: ForwardPlan?
        var bufferedBody: [ByteBuffer] = []
        var requestEnded = false
        var requestBytes = 0
        var requestHash = SHA256()
        var responseHash = SHA256()
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
        var timeout: Scheduled<Void>?
        var errorProbe: [UInt8] = []
        var rateLimitSubject: RateLimitSubject?
        /// The byte stream below this call went bad: close after the refusal instead of reading on.
        var closeAfterRefusal = false

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
        }
        call?.timeout?.cancel()
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
        let call = CallState(
            requestID: UUID().uuidString.lowercased(), head: head, clientAddress: context.channel.remoteAddress?.ipAddress
        )
        call.record.callerCertificateFingerprint = clientFingerprint(context: context)
        self.call = call
        phase = .pending
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
            call.record.idempotencyKey = head.headers.first(name: "klarna-idempotency-key")
            let chunked = head.headers[canonicalForm: "transfer-encoding"].contains("chunked")
            let expectsContinue = head.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
            let proceed = {
                if expectsContinue {
                    context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                }
                self.forward(plan, call: call, chunked: chunked, context: context)
            }
            limitRate(plan, snapshot: snapshot, call: call, context: context, proceed: proceed)
        }
    }

    /// The rate-limit stage: admit, shape (forward after a wait, room already reserved) or refuse.
    private func limitRate(_ plan: ForwardPlan, snapshot: GatewaySnapshot, call: CallState, context: ChannelHandlerContext, proceed: @escaping () -> Void) {
        guard let callerID = plan.facts.callerID, let environment = plan.facts.environment, let operation = plan.facts.operation else {
            proceed()
            return
        }
        let subject = RateLimitSubject(
            callerID: callerID, merchantID: plan.facts.merchantID, merchantGroups: plan.target.merchant?.record.groups ?? [],
            partnerID: plan.target.partner.record.id, environment: environment, category: operation.category
        )
        call.rateLimitSubject = subject
        let limiter = runtime.rateLimiter
        switch limiter.decide(subject, policy: snapshot.rateLimits, now: Int64(NIODeadline.now().uptimeNanoseconds)) {
        case .admit:
            proceed()
        case .delay(let nanoseconds):
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) {
                limiter.dequeued()
                guard self.call === call, case .pending = self.phase else { return }
                proceed()
            }
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
            // Discarding the rest of a refused request's body, but no more than the limit allows.
            if tooLarge { context.close(promise: nil) }
        case .pending, .forwarding:
            if tooLarge {
                abortUpstream(context: context)
                refuse(GatewayError(.payloadTooLarge, "The body is larger than \(runtime.limits.maxBodyBytes) bytes."), context: context)
                return
            }
            buffer.withUnsafeReadableBytes { call.requestHash.update(bufferPointer: $0) }
            if case .forwarding(let connection) = phase {
                connection.channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            } else {
                call.bufferedBody.append(buffer)
            }
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        guard let call else { return }
        call.requestEnded = true
        call.record.requestBodyBytes = call.requestBytes
        call.record.requestBodySHA256 = Hex.encode(call.requestHash.finalize())
        switch phase {
        case .forwarding(let connection):
            connection.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        case .finishing:
            if call.responseEnded { reset() }
        case .idle, .pending:
            break
        }
    }

    // MARK: - Upstream

    private func forward(_ plan: ForwardPlan, call: CallState, chunked: Bool, context: ChannelHandlerContext) {
        var intent = call.record
        intent.phase = .intent
        intent.timeMicros = CallState.nowMicros()
        let loop = context.eventLoop
        let pool = runtime.pools.pool(for: loop)
        let journaled = runtime.journal.record(intent, on: loop)
        journaled.assumeIsolated().whenComplete { result in
            guard self.call === call, case .pending = self.phase else { return }
            if case .failure = result {
                self.refuse(GatewayError(.auditUnavailable, "The audit trail cannot record this call, so it was not forwarded."), context: context)
                return
            }
            call.record.upstreamAttempts += 1
            call.upstreamSent = .now()
            pool.acquire(endpoint: plan.upstream.endpoint, identity: plan.upstream.identity).assumeIsolated().whenComplete { result in
                guard self.call === call, case .pending = self.phase else {
                    if case .success(let connection) = result { pool.release(connection, reusable: true) }
                    return
                }
                switch result {
                case .failure(let error):
                    self.runtime.logger.warning(
                        "upstream connection failed",
                        metadata: ["request_id": "\(call.requestID)", "upstream": "\(plan.upstream.endpoint)", "error": "\(error)"])
                    self.refuse(GatewayError(.upstreamUnavailable, "Klarna could not be reached (\(plan.upstream.endpoint.authority))."), context: context)
                case .success(let connection):
                    self.send(plan.upstream, over: connection, call: call, chunked: chunked, context: context)
                }
            }
        }
    }

    private func send(_ upstream: UpstreamRequestHead, over connection: UpstreamConnection, call: CallState, chunked: Bool, context: ChannelHandlerContext) {
        connection.handler.delegate = self
        phase = .forwarding(connection)
        var headers = HTTPHeaders(upstream.headers)
        if chunked && !headers.contains(name: "content-length") { headers.add(name: "transfer-encoding", value: "chunked") }
        let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: upstream.method), uri: upstream.target, headers: headers)
        connection.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        for buffer in call.bufferedBody {
            connection.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        }
        call.bufferedBody = []
        if call.requestEnded { connection.channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        connection.channel.flush()
        let timeout = runtime.responseTimeout
        call.timeout = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard self.call === call, !call.responseStarted else { return }
            self.abortUpstream(context: context)
            self.refuse(GatewayError(.upstreamTimeout, "Klarna did not answer within \(timeout.nanoseconds / 1_000_000) ms."), context: context)
        }
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let context, let call, case .forwarding(let connection) = phase else { return }
        switch part {
        case .head(let head):
            call.timeout?.cancel()
            call.responseStarted = true
            call.upstreamKeepAlive = head.isKeepAlive
            call.record.status = Int(head.status.code)
            learnQuota(from: head)
            if let sent = call.upstreamSent { call.record.upstreamLatencyMicros = (NIODeadline.now() - sent).nanoseconds / 1000 }
            var headers = HTTPHeaders()
            headers.reserveCapacity(head.headers.count + 2)
            for (name, value) in head.headers where !Self.responseHopByHop.contains(name.lowercased()) {
                headers.add(name: name, value: value)
            }
            headers.add(name: "Klarna-Gateway-Request-Id", value: call.requestID)
            if !isHTTP2 && !call.keepAlive { headers.add(name: "Connection", value: "close") }
            call.heldHead = HTTPResponseHead(version: .http1_1, status: head.status, headers: headers)
        case .body(let buffer):
            call.responseBytes += buffer.readableBytes
            buffer.withUnsafeReadableBytes { call.responseHash.update(bufferPointer: $0) }
            if call.record.status.map({ $0 >= 400 }) == true && call.errorProbe.count < 4096 {
                call.errorProbe += buffer.readableBytesView.prefix(4096 - call.errorProbe.count)
            }
            if call.released {
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            } else {
                call.heldBody.append(buffer)
                call.heldBytes += buffer.readableBytes
                // Past the hold limit the answer streams, and its outcome record follows the last byte.
                if call.heldBytes > runtime.limits.maxHeldResponseBytes { release(call, context: context) }
            }
        case .end(let trailers):
            call.responseEnded = true
            call.record.responseBodyBytes = call.responseBytes
            call.record.responseBodySHA256 = Hex.encode(call.responseHash.finalize())
            (call.record.klarnaErrorCode, call.record.klarnaErrorID) = KlarnaErrorBody.codes(in: call.errorProbe)
            connection.handler.delegate = nil
            runtime.pools.pool(for: context.eventLoop).release(connection, reusable: call.upstreamKeepAlive && call.requestEnded)
            phase = .finishing
            var outcome = call.record
            outcome.phase = .outcome
            outcome.timeMicros = CallState.nowMicros()
            // The outcome is recorded before the answer is released: a caller never holds a response the audit
            // trail lacks.
            runtime.journal.record(outcome, on: context.eventLoop).assumeIsolated().whenComplete { result in
                guard self.context != nil, self.call === call else { return }
                switch result {
                case .success:
                    self.runtime.metrics.observe(outcome, started: call.started)
                    self.release(call, context: context)
                    let written = context.writeAndFlush(self.wrapOutboundOut(.end(trailers)))
                    self.finish(call: call, written: written, context: context)
                case .failure:
                    if call.released {
                        // Part of the answer already streamed (over the hold limit): cut it short.
                        context.close(promise: nil)
                    } else {
                        call.heldHead = nil
                        call.heldBody = []
                        self.refuse(GatewayError(
                            .auditUnavailable,
                            "Klarna answered, but the audit trail could not record the outcome; retry with the same Klarna-Idempotency-Key."
                        ), context: context)
                    }
                }
            }
        }
    }

    /// Sends the held head and body to the caller; from here on the answer streams.
    private func release(_ call: CallState, context: ChannelHandlerContext) {
        guard !call.released, let head = call.heldHead else { return }
        call.released = true
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        for buffer in call.heldBody { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        call.heldHead = nil
        call.heldBody = []
        context.flush()
    }

    func upstreamFailed(_ error: any Error) {
        guard let context, let call, case .forwarding(let connection) = phase else { return }
        call.timeout?.cancel()
        runtime.pools.pool(for: context.eventLoop).release(connection, reusable: false)
        phase = .pending
        if call.released {
            // Part of Klarna's answer already went out; the only honest signal left is to cut the connection.
            phase = .finishing
            context.close(promise: nil)
            return
        }
        runtime.logger.warning("upstream exchange failed", metadata: ["request_id": "\(call.requestID)", "error": "\(error)"])
        refuse(GatewayError(.upstreamUnavailable, "The connection to Klarna failed before an answer arrived."), context: context)
    }

    /// Klarna's own quota signals (a 429, or `X-Ratelimit-Remaining: 0`) hold the key locally until its reset,
    /// so further calls are refused here instead of spending Klarna's patience.
    private func learnQuota(from head: HTTPResponseHead) {
        guard let call, let subject = call.rateLimitSubject else { return }
        let exhausted = head.status == .tooManyRequests || head.headers.first(name: "x-ratelimit-remaining") == "0"
        guard exhausted else { return }
        let seconds = head.headers.first(name: "x-ratelimit-reset").flatMap(Double.init) ?? 1
        let until = Int64(NIODeadline.now().uptimeNanoseconds) + Int64(min(max(seconds, 0), 3600) * 1_000_000_000)
        runtime.rateLimiter.hold(subject, until: until)
    }

    private func abortUpstream(context: ChannelHandlerContext) {
        if case .forwarding(let connection) = phase {
            connection.handler.delegate = nil
            runtime.pools.pool(for: context.eventLoop).release(connection, reusable: false)
            phase = .pending
        }
    }

    // MARK: - Responses

    /// Hop-by-hop response headers that describe Klarna's connection, not the caller's.
    static let responseHopByHop: Set<String> = ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]

    /// Answers with a gateway error in Klarna's shape, journals the refusal, and discards the rest of the body.
    private func refuse(_ error: GatewayError, context: ChannelHandlerContext) {
        guard let call else { return }
        call.timeout?.cancel()
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
        let body = error.klarnaJSON(errorID: call.requestID)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Klarna-Gateway-Request-Id", value: call.requestID)
        for header in error.extraHeaders { headers.add(name: header.name, value: header.value) }
        // A body still arriving is read and discarded (it is bounded by the body limit), so the connection stays
        // usable; an oversize body or a caller that asked for it closes the connection.
        let close = !isHTTP2 && (call.closeAfterRefusal || !call.keepAlive || (!call.requestEnded && error.code == .payloadTooLarge))
        if close { headers.add(name: "Connection", value: "close") }
        let record = call.record
        let status = HTTPResponseStatus(statusCode: error.status)
        runtime.journal.record(record, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            // A refusal is sent whether or not its record could be written: refusing forwards nothing.
            self.runtime.metrics.observe(record, started: call.started)
            guard self.context != nil else { return }
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let written = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
            if close {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                self.finish(call: call, written: written, context: context)
            }
        }
    }

    /// After the response's end: close if the caller asked, else wait for the request's end to go idle.
    private func finish(call: CallState, written: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        if !isHTTP2 && !call.keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        if call.requestEnded && self.call === call { reset() }
    }

    private func reset() {
        call = nil
        phase = .idle
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
