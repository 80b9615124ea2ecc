import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// The upstream half of a call: the intent, attempts, connections, timers and retries. Every decision is the
/// call's `CallMachine`'s or a pure policy's in GatewayCore (`RetryPolicy`, `RetryBudget`, `CircuitBreaker`);
/// this code only carries them out.
extension GatewayRequestHandler {
    /// Journals the intent; the machine starts the call's deadline and its first attempt once it is durable.
    func journalIntent(call: CallState, context: ChannelHandlerContext) {
        // In place, not a copy: the outcome or refusal record sets both again.
        call.record.phase = .intent
        call.record.timeMicros = CallState.nowMicros()
        if runtime.journalIsDurable { call.trace.journalStarted(CallTracing.Name.auditIntent) }
        journal(call: call, context: context)
    }

    /// Asks the breaker of Klarna's host whether the next attempt may go out.
    func admitAttempt(call: CallState, context: ChannelHandlerContext) {
        guard let host = call.plan?.upstream.endpoint.authority else { return }
        let now = UpstreamClock.now
        perform(call.machine.attemptAdmission(breaker(host).admit(now: now), now: now), call: call, context: context)
    }

    /// The breaker of Klarna's `host`, found through the loop's memo.
    func breaker(_ host: String) -> BreakerBoard.Host {
        runtime.breakers.host(host, memo: loopMemo.breakers)
    }

    /// Takes an idle pooled connection, or opens one (TLS handshake done) within `timeout`.
    func connect(call: CallState, timeout: Int64, context: ChannelHandlerContext) {
        guard let plan = call.plan else { return }
        call.record.upstreamAttempts += 1
        runtime.resilienceMetrics.attempts.increment()
        if call.upstreamSent == nil { call.upstreamSent = .now() }
        let attempt = call.machine.attempts
        let host = plan.upstream.endpoint.authority
        call.trace.attemptStarted(number: call.record.upstreamAttempts, host: host)
        let pool = runtime.pools.pool(for: context.eventLoop)
        if let idle = pool.takeIdle(endpoint: plan.upstream.endpoint, identity: plan.upstream.identity) {
            call.trace.attemptEvent(.reused)
            connected(idle, attempt: attempt, call: call, context: context)
            return
        }
        var tcpConnected: (@Sendable () -> Void)?
        if call.trace.attempt != nil {
            let traced = NIOLoopBound(call, eventLoop: context.eventLoop)
            tcpConnected = { traced.value.trace.attemptEvent(.tcpConnected) }
        }
        pool.connect(
            endpoint: plan.upstream.endpoint, identity: plan.upstream.identity,
            connectTimeout: .nanoseconds(timeout), handshakeTimeout: .nanoseconds(call.machine.timeouts.tlsHandshake),
            tcpConnected: tcpConnected
        ).assumeIsolated().whenComplete { result in
            guard self.call === call else {
                // The handler serves another call now: this one's machine has nothing more to say.
                if case .success(let connection) = result { pool.release(connection, reusable: true) }
                if call.machine.probe { self.breaker(host).abandonProbe(now: UpstreamClock.now) }
                return
            }
            switch result {
            case .failure(let error):
                call.trace.attemptEnded(failure: "connect failed")
                self.runtime.logger.warning(
                    "upstream connection failed",
                    metadata: call.logMetadata(["upstream": "\(host)", "attempt": "\(attempt)", "error": "\(error)"]))
                let now = UpstreamClock.now
                self.perform(call.machine.connectFailed(attempt: attempt, now: now) { self.decideRetry($0, attempt: $1, repeatable: $2, deadline: $3, now: now) }, call: call, context: context)
            case .success(let connection):
                call.trace.attemptEvent(.tlsDone)
                self.connected(connection, attempt: attempt, call: call, context: context)
            }
        }
    }

    /// The attempt's connection is ready: the call holds it from here (the machine releases it if the call moved on).
    private func connected(_ connection: UpstreamConnection, attempt: Int, call: CallState, context: ChannelHandlerContext) {
        self.connection = connection
        connection.handler.delegate = self
        if !context.channel.isWritable { pauseUpstream(true, connection) }
        perform(call.machine.connected(attempt: attempt, now: UpstreamClock.now), call: call, context: context)
    }

    /// Sends the request (head, the body so far, its end if it came) over the call's connection.
    func send(call: CallState, context: ChannelHandlerContext) {
        guard let connection, let upstream = call.plan?.upstream else { return }
        var headers = HTTPHeaders(upstream.headers)
        if call.chunked && !headers.contains(name: "content-length") { headers.add(name: "transfer-encoding", value: "chunked") }
        let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: upstream.method), uri: upstream.target, headers: headers)
        let attempt = call.machine.attempts
        connection.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        call.bodyParts.forEach { connection.channel.write(HTTPClientRequestPart.body(.byteBuffer($0)), promise: nil) }
        if call.machine.requestEnded { connection.channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        connection.channel.flush()
        // Once the head is on the wire Klarna may act on it; before, a failure means it saw nothing. A write the
        // socket refuses closes the channel before `flush` returns (NIO closes a channel whose write failed, and
        // the call has already heard of it), so an open channel means the bytes were written or are queued:
        // counted as sent, the safe side for retries. A promise told the same at seven allocations per call: the
        // promise and its callback, and what NIOSSL makes to aggregate write promises (a list, a promise, a callback).
        if connection.channel.isActive { call.machine.headWritten(attempt: attempt) }
    }

    /// (Re)arms the call's one deadline at `time` (`UpstreamClock`) in its loop's `CallDeadlines`.
    func armWatchdog(call: CallState, at time: Int64, context: ChannelHandlerContext) {
        runtime.deadlines(for: context.eventLoop).arm(call, owner: self, at: time)
    }

    /// Stops every timer of the call.
    func cancelTimers(call: CallState, context: ChannelHandlerContext) {
        runtime.deadlines(for: context.eventLoop).disarm(call)
        call.retryTimer?.cancel()
        call.retryTimer = nil
    }

    /// The call's deadline passed: the machine checks every limit and acts on the one that ran out.
    func deadlineReached(_ call: CallState) {
        guard let context, self.call === call else { return }
        let now = UpstreamClock.now
        perform(call.machine.watchdogFired(now: now) { self.decideRetry($0, attempt: $1, repeatable: $2, deadline: $3, now: now) }, call: call, context: context)
    }

    /// Forgets the failed attempt's answer and asks the breaker again after `delay`.
    func scheduleRetry(call: CallState, delay: Int64, reason: RetryReason, context: ChannelHandlerContext) {
        call.forgetAnswer()
        runtime.resilienceMetrics.retried(reason)
        runtime.logger.info(
            "retrying upstream call",
            metadata: call.logMetadata(["reason": "\(reason.rawValue)", "attempt": "\(call.machine.attempts + 1)", "delay_ms": "\(delay / 1_000_000)"]))
        call.retryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay)) {
            guard self.call === call else { return }
            call.retryTimer = nil
            self.perform(call.machine.retryTimerFired(), call: call, context: context)
        }
    }

    /// The retry policy over the shared budget, as the machine asks it (passed as a non-escaping closure, so
    /// asking costs no allocation).
    func decideRetry(_ failure: AttemptFailure, attempt: Int, repeatable: Bool, deadline: Int64, now: Int64) -> RetryDecision {
        let policy = runtime.resilience.retry
        var random = SystemRandomNumberGenerator()
        return runtime.retryBudget.update { budget in
            policy.decide(after: failure, attempt: attempt, repeatable: repeatable, now: now, deadline: deadline, budget: &budget, random: &random)
        }
    }

    /// The log line beside a refusal the upstream half decided.
    func log(_ note: CallMachine.Note, call: CallState) {
        switch note {
        case .notRetried(let stop):
            runtime.logger.info("upstream call not retried", metadata: call.logMetadata(["why": "\(stop)"]))
        case .deadlinePassed:
            runtime.logger.warning("upstream call deadline passed", metadata: call.logMetadata(["attempts": "\(call.machine.attempts)"]))
        }
    }
}
