import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// The upstream half of a call: attempts, timeouts, retries and the breaker. Every decision is made by the pure
/// policies in GatewayCore (`RetryPolicy`, `RetryBudget`, `CircuitBreaker`); this code only carries them out.
extension GatewayRequestHandler {
    /// Statuses whose answer may be retried (503, 429, 500 `TIMEOUT`); the policy decides.
    static let retryableStatuses: Set<Int> = [429, 500, 503]

    /// Journals the intent, starts the call's deadline and makes the first attempt.
    func forward(call: CallState, context: ChannelHandlerContext) {
        var intent = call.record
        intent.phase = .intent
        intent.timeMicros = CallState.nowMicros()
        runtime.journal.record(intent, on: context.eventLoop).assumeIsolated().whenComplete { result in
            guard self.call === call, case .pending = self.phase else { return }
            if case .failure = result {
                self.refuse(GatewayError(.auditUnavailable, "The audit trail cannot record this call, so it was not forwarded."), context: context)
                return
            }
            let now = UpstreamClock.now
            call.deadline = now + call.timeouts.total
            // No limit a later step sets can run out before this: a response head is due no sooner than
            // `responseHead` after this moment, a body read no sooner than `bodyIdle`.
            self.armWatchdog(call: call, at: min(call.deadline, now + min(call.timeouts.responseHead, call.timeouts.bodyIdle)), context: context)
            self.runtime.retryBudget.withLockedValue { $0.deposit() }
            self.attempt(call: call, context: context)
        }
    }

    /// One attempt: ask the breaker, take a connection (TLS handshake done), send.
    private func attempt(call: CallState, context: ChannelHandlerContext) {
        guard let plan = call.plan else { return }
        let host = plan.upstream.endpoint.authority
        switch runtime.breakers.admit(host: host, now: UpstreamClock.now) {
        case .reject(let retryAfter):
            giveUp(call: call, last: call.lastFailure ?? .notSent, breakerRetryAfter: retryAfter, context: context)
            return
        case .probe: call.probe = true
        case .allow: call.probe = false
        }
        call.attempt += 1
        call.record.upstreamAttempts += 1
        runtime.resilienceMetrics.attempts.increment()
        call.attemptSent = false
        if call.upstreamSent == nil { call.upstreamSent = .now() }
        let attempt = call.attempt
        let remaining = max(1, call.deadline - UpstreamClock.now)
        let pool = runtime.pools.pool(for: context.eventLoop)
        if let idle = pool.takeIdle(endpoint: plan.upstream.endpoint, identity: plan.upstream.identity) {
            send(over: idle, call: call, context: context)
            return
        }
        pool.connect(
            endpoint: plan.upstream.endpoint, identity: plan.upstream.identity,
            connectTimeout: .nanoseconds(min(call.timeouts.connect, remaining)), handshakeTimeout: .nanoseconds(call.timeouts.tlsHandshake)
        ).assumeIsolated().whenComplete { result in
            guard self.call === call, call.attempt == attempt, case .pending = self.phase else {
                if case .success(let connection) = result { pool.release(connection, reusable: true) }
                if call.probe { self.runtime.breakers.abandonProbe(host: host, now: UpstreamClock.now) }
                return
            }
            switch result {
            case .failure(let error):
                self.runtime.logger.warning(
                    "upstream connection failed",
                    metadata: call.logMetadata(["upstream": "\(host)", "attempt": "\(attempt)", "error": "\(error)"]))
                self.attemptFailed(.notSent, call: call, context: context)
            case .success(let connection):
                self.send(over: connection, call: call, context: context)
            }
        }
    }

    private func send(over connection: UpstreamConnection, call: CallState, context: ChannelHandlerContext) {
        guard let upstream = call.plan?.upstream else { return }
        connection.handler.delegate = self
        phase = .forwarding(connection)
        var headers = HTTPHeaders(upstream.headers)
        if let key = call.generatedKey { headers.add(name: IdempotencyKeys.header, value: key) }
        if call.chunked && !headers.contains(name: "content-length") { headers.add(name: "transfer-encoding", value: "chunked") }
        let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: upstream.method), uri: upstream.target, headers: headers)
        let attempt = call.attempt
        let written = context.eventLoop.makePromise(of: Void.self)
        connection.channel.write(HTTPClientRequestPart.head(head), promise: written)
        // Once the head is on the wire Klarna may act on it; before, a failure means it saw nothing.
        written.futureResult.assumeIsolated().whenSuccess { if call.attempt == attempt { call.attemptSent = true } }
        for buffer in call.bodyParts {
            connection.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        }
        if call.requestEnded { connection.channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        connection.channel.flush()
        let now = UpstreamClock.now
        let headDue = now + min(call.timeouts.responseHead, max(1, call.deadline - now))
        call.headDue = headDue
        // Only a retry's attempt can be due before the watchdog fires (the first is covered by how it was armed).
        if headDue < call.watchdogAt { armWatchdog(call: call, at: headDue, context: context) }
    }

    /// (Re)arms the call's one timer to fire at `time` (`UpstreamClock`).
    func armWatchdog(call: CallState, at time: Int64, context: ChannelHandlerContext) {
        call.watchdog?.cancel()
        call.watchdogAt = time
        call.watchdog = context.eventLoop.assumeIsolated().scheduleTask(deadline: NIODeadline.uptimeNanoseconds(UInt64(max(0, time)))) {
            self.watchdogFired(call: call, context: context)
        }
    }

    /// Checks every limit of the call; acts on the one that ran out, or re-arms for the next that could.
    private func watchdogFired(call: CallState, context: ChannelHandlerContext) {
        guard self.call === call, !call.responseEnded else { return }
        call.watchdog = nil
        call.watchdogAt = .max
        let now = UpstreamClock.now
        if now >= call.deadline {
            deadlinePassed(call: call, context: context)
            return
        }
        var next = call.deadline
        if case .forwarding = phase {
            if !call.responseStarted, let due = call.headDue {
                if now >= due {
                    abortUpstream(context: context)
                    attemptFailed(.timedOut, call: call, context: context)
                    return
                }
                // The head may arrive at any moment and start the body's idle limit.
                next = min(next, due, now + call.timeouts.bodyIdle)
            } else if call.responseStarted {
                let due = call.lastResponseRead + call.timeouts.bodyIdle
                if now >= due {
                    abortUpstream(context: context)
                    if call.released {
                        // Part of the answer already went out: cutting the connection is the only honest signal left.
                        context.close(promise: nil)
                        return
                    }
                    attemptFailed(.timedOut, call: call, context: context)
                    return
                }
                next = min(next, due)
            }
        } else {
            // Waiting for a connection or a retry: the next attempt's limits start no sooner than now.
            next = min(next, now + min(call.timeouts.responseHead, call.timeouts.bodyIdle))
        }
        armWatchdog(call: call, at: next, context: context)
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let context, let call, case .forwarding(let connection) = phase else { return }
        switch part {
        case .head(let head):
            call.headDue = nil
            call.lastResponseRead = UpstreamClock.now
            call.responseStarted = true
            call.upstreamKeepAlive = head.isKeepAlive
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
            if !isHTTP2 && !call.keepAlive { headers.add(name: "Connection", value: "close") }
            call.heldHead = HTTPResponseHead(version: .http1_1, status: head.status, headers: headers)
        case .body(let buffer):
            call.lastResponseRead = UpstreamClock.now
            call.responseBytes += buffer.readableBytes
            if runtime.hashesBodies { CallState.hash(buffer, into: &call.responseHash) }
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
            (call.record.klarnaErrorCode, call.record.klarnaErrorID) = KlarnaErrorBody.codes(in: call.errorProbe)
            connection.handler.delegate = nil
            runtime.pools.pool(for: context.eventLoop).release(connection, reusable: call.upstreamKeepAlive && call.requestEnded)
            let status = call.record.status ?? 0
            let failure = AttemptFailure.answered(status: status, klarnaErrorCode: call.record.klarnaErrorCode, retryAfter: call.retryAfter)
            runtime.breakers.record(host: call.plan?.upstream.endpoint.authority ?? "", failed: failure.countsAgainstHost, probe: call.probe, now: UpstreamClock.now)
            if Self.retryableStatuses.contains(status) && !call.released {
                call.lastFailure = failure
                phase = .pending
                if case .retry(let delay, let reason) = decideRetry(after: failure, call: call) {
                    scheduleRetry(call: call, delay: delay, reason: reason, context: context)
                    return
                }
            }
            call.responseEnded = true
            call.cancelTimers()
            call.bodyParts = []
            call.record.responseBodyBytes = call.responseBytes
            if runtime.hashesBodies { call.record.responseBodySHA256 = CallState.hex(of: call.responseHash) }
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
                    // Head, body and end leave in one flush: one write to the caller's socket per answer, not two.
                    self.release(call, context: context, flush: false)
                    let written = context.writeAndFlush(self.wrapOutboundOut(.end(trailers)))
                    call.answerWritten = true
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
    func release(_ call: CallState, context: ChannelHandlerContext, flush: Bool = true) {
        guard !call.released, let head = call.heldHead else { return }
        call.released = true
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        for buffer in call.heldBody { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        call.heldHead = nil
        call.heldBody = []
        if flush { context.flush() }
    }

    func upstreamFailed(_ error: any Error) {
        guard let context, let call, case .forwarding(let connection) = phase else { return }
        call.headDue = nil
        runtime.pools.pool(for: context.eventLoop).release(connection, reusable: false)
        phase = .pending
        if call.released {
            // Part of Klarna's answer already went out; the only honest signal left is to cut the connection.
            runtime.breakers.record(host: call.plan?.upstream.endpoint.authority ?? "", failed: true, probe: call.probe, now: UpstreamClock.now)
            phase = .finishing
            context.close(promise: nil)
            return
        }
        runtime.logger.warning(
            "upstream exchange failed",
            metadata: call.logMetadata(["attempt": "\(call.attempt)", "sent": "\(call.attemptSent)", "error": "\(error)"]))
        attemptFailed(call.attemptSent ? .lostAfterSend : .notSent, call: call, context: context)
    }

    /// An attempt ended without an answer: tell the breaker, then retry or give up as the policy says.
    private func attemptFailed(_ failure: AttemptFailure, call: CallState, context: ChannelHandlerContext) {
        call.headDue = nil
        if let host = call.plan?.upstream.endpoint.authority {
            runtime.breakers.record(host: host, failed: failure.countsAgainstHost, probe: call.probe, now: UpstreamClock.now)
        }
        if failure.leavesOutcomeUnknown { call.outcomeUnknown = true }
        call.lastFailure = failure
        phase = .pending
        switch decideRetry(after: failure, call: call) {
        case .retry(let delay, let reason):
            scheduleRetry(call: call, delay: delay, reason: reason, context: context)
        case .stop(let stop):
            runtime.logger.info("upstream call not retried", metadata: call.logMetadata(["why": "\(stop)"]))
            giveUp(call: call, last: failure, breakerRetryAfter: nil, context: context)
        }
    }

    private func decideRetry(after failure: AttemptFailure, call: CallState) -> RetryDecision {
        guard let plan = call.plan else { return .stop(.final) }
        let repeatable = IdempotencyKeys.isRepeatable(method: plan.upstream.method, key: call.record.idempotencyKey)
        let policy = runtime.resilience.retry
        let attempt = call.attempt
        let deadline = call.deadline
        var random = SystemRandomNumberGenerator()
        return runtime.retryBudget.withLockedValue { budget in
            policy.decide(after: failure, attempt: attempt, repeatable: repeatable, now: UpstreamClock.now, deadline: deadline, budget: &budget, random: &random)
        }
    }

    /// Forgets the failed attempt's answer and tries again after `delay`.
    private func scheduleRetry(call: CallState, delay: Int64, reason: RetryReason, context: ChannelHandlerContext) {
        call.responseStarted = false
        call.heldHead = nil
        call.heldBody = []
        call.heldBytes = 0
        call.responseBytes = 0
        call.responseHash = nil
        call.errorProbe = []
        call.upstreamKeepAlive = true
        call.retryAfter = nil
        call.record.status = nil
        call.record.klarnaErrorCode = nil
        call.record.klarnaErrorID = nil
        runtime.resilienceMetrics.retried(reason)
        runtime.logger.info(
            "retrying upstream call",
            metadata: call.logMetadata(["reason": "\(reason.rawValue)", "attempt": "\(call.attempt + 1)", "delay_ms": "\(delay / 1_000_000)"]))
        call.retryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay)) {
            guard self.call === call, case .pending = self.phase else { return }
            self.attempt(call: call, context: context)
        }
    }

    /// The call's total deadline passed before it ended.
    private func deadlinePassed(call: CallState, context: ChannelHandlerContext) {
        guard self.call === call, !call.responseEnded else { return }
        if call.released {
            abortUpstream(context: context)
            context.close(promise: nil)
            return
        }
        var last = call.lastFailure ?? .timedOut
        if case .forwarding = phase {
            abortUpstream(context: context)
            if let host = call.plan?.upstream.endpoint.authority {
                runtime.breakers.record(host: host, failed: true, probe: call.probe, now: UpstreamClock.now)
            }
            call.outcomeUnknown = true
            last = .timedOut
        }
        runtime.logger.warning("upstream call deadline passed", metadata: call.logMetadata(["attempts": "\(call.attempt)"]))
        giveUp(call: call, last: last, breakerRetryAfter: nil, context: context)
    }

    /// Ends the call with the policy's error, or with the breaker's fast 503 when nothing was ever sent.
    private func giveUp(call: CallState, last: AttemptFailure, breakerRetryAfter: Int64?, context: ChannelHandlerContext) {
        guard let plan = call.plan else { return }
        let authority = plan.upstream.endpoint.authority
        var error = RetryPolicy.finalError(
            last: last, outcomeUnknown: call.outcomeUnknown, method: plan.upstream.method, idempotencyKey: call.record.idempotencyKey,
            authority: authority, attempts: call.record.upstreamAttempts)
            ?? GatewayError(.upstreamUnavailable, "Klarna (\(authority)) could not be reached.")
        if let breakerRetryAfter, error.code == .upstreamUnavailable {
            let seconds = max(1, (breakerRetryAfter + 999_999_999) / 1_000_000_000)
            error = GatewayError(
                .upstreamUnavailable,
                "Klarna (\(authority)) is failing, so the gateway's circuit breaker is open and nothing was forwarded; retry after \(seconds) s.",
                headers: [.init("Retry-After", String(seconds))])
        }
        refuse(error, context: context)
    }

    func abortUpstream(context: ChannelHandlerContext) {
        if case .forwarding(let connection) = phase {
            connection.handler.delegate = nil
            runtime.pools.pool(for: context.eventLoop).release(connection, reusable: false)
            phase = .pending
        }
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
