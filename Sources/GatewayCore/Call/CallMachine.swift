/// The life of one proxied call as a value: the data plane feeds it what happened (events) and carries out what
/// it returns (actions). It does no I/O and reads no clock (times arrive with the events, on the monotonic
/// `UpstreamClock` scale, in nanoseconds), so every transition is tested on its own, as swift-nio's
/// `HTTPServerPipelineHandler` and async-http-client's connection state machines are.
///
/// Request bodies and held answers stay with the handler (they are buffers); the machine decides what happens to
/// them. Shared state (the circuit breakers, the retry budget) stays outside too: the breaker's verdict comes in
/// as an event, its bookkeeping goes out in `Action.breaker`, and retry decisions are asked of a `RetryDecider`.
public struct CallMachine: Sendable {
    /// Where the call is. A call begins in `admitting` (the head has been planned) and ends in `answered` or
    /// `closed`; the handler goes idle when the machine says `.finished`.
    public enum State: Sendable, Equatable {
        /// The rate-limit stage is deciding, or the call waits for room.
        case admitting
        /// The intent record is being written; nothing has gone to Klarna.
        case journalingIntent
        /// Attempt `attempt` waits for a connection (handshake included).
        case connecting(attempt: Int)
        /// An attempt is on a connection.
        case exchanging(Exchange)
        /// Waiting to start the attempt after `attempt` (0: the first, once the intent is recorded).
        case backingOff(attempt: Int)
        /// Klarna's answer has ended and its outcome record is being written; `streamed` when part of the answer
        /// already went to the caller (over the hold limit).
        case journalingOutcome(streamed: Bool)
        /// The gateway's own refusal is being journaled.
        case journalingRefusal
        /// The answer's end has been handed to the caller's connection.
        case answered
        /// The caller's connection is gone or being closed: nothing more happens.
        case closed
    }

    /// One attempt on a connection.
    public struct Exchange: Sendable, Equatable {
        /// The attempt's number, from 1.
        public var attempt: Int
        /// The request head is on the wire: from here a lost connection leaves Klarna's outcome unknown.
        public var sent: Bool
        /// How far Klarna's answer has come.
        public var response: Response

        /// An attempt at this point.
        public init(attempt: Int, sent: Bool, response: Response) {
            self.attempt = attempt
            self.sent = sent
            self.response = response
        }
    }

    /// Klarna's answer to the current attempt.
    public enum Response: Sendable, Equatable {
        /// No head yet; it is due at `due`.
        case awaitingHead(due: Int64)
        /// The head came; the answer is held until its outcome is recorded. `bytes` of body so far; `lastRead`
        /// starts the body's idle limit.
        case holding(bytes: Int, lastRead: Int64)
        /// Past the hold limit the answer streams to the caller, and its outcome record follows the last byte.
        case streaming(lastRead: Int64)
    }

    /// What the call forwards, known once it is planned and admitted.
    public struct Target: Sendable, Equatable {
        /// The method sent to Klarna.
        public var method: String
        /// The `Klarna-Idempotency-Key` the call carries (the caller's or the gateway's).
        public var idempotencyKey: String?
        /// Klarna's host and port, for errors.
        public var authority: String
        /// The call's time limits (its operation family's).
        public var timeouts: UpstreamTimeouts

        /// The facts the upstream half needs.
        public init(method: String, idempotencyKey: String?, authority: String, timeouts: UpstreamTimeouts) {
            self.method = method
            self.idempotencyKey = idempotencyKey
            self.authority = authority
            self.timeouts = timeouts
        }
    }

    /// Decides whether a failed attempt is tried again: `RetryPolicy.decide` over the shared budget, in production.
    public typealias RetryDecider = (_ failure: AttemptFailure, _ attempt: Int, _ repeatable: Bool, _ deadline: Int64) -> RetryDecision

    /// Where the call is now.
    public private(set) var state: State = .admitting
    /// The request's end has arrived.
    public private(set) var requestEnded = false
    /// Request body bytes so far.
    public private(set) var requestBytes = 0
    /// Attempts started.
    public private(set) var attempts = 0
    /// Some attempt was sent and never answered: Klarna may have acted.
    public private(set) var outcomeUnknown = false
    /// The current attempt is the breaker's half-open probe.
    public private(set) var probe = false
    /// The whole call's deadline, set when the intent is recorded.
    public private(set) var deadline: Int64 = .max
    /// When the call's one timer should fire; `.max` while none is armed.
    public private(set) var watchdogAt: Int64 = .max
    /// The connection is closed once the answer is written: the caller asked, or the byte stream went bad.
    public private(set) var closeAfterAnswer: Bool

    private let maxBodyBytes: Int
    private let maxHeldBytes: Int
    private let isHTTP2: Bool
    /// The caller's wish to keep its HTTP/1 connection after this call.
    public let keepAlive: Bool
    private var target: Target?
    private var lastFailure: AttemptFailure?
    private var upstreamKeepAlive = true
    private var refusalClosesConnection = false

    /// A call whose head has arrived. `keepAlive` is the caller's wish (HTTP/1); an HTTP/2 stream never closes
    /// its connection.
    public init(maxBodyBytes: Int, maxHeldResponseBytes: Int, isHTTP2: Bool, keepAlive: Bool, closeAfterAnswer: Bool = false) {
        self.maxBodyBytes = maxBodyBytes
        self.maxHeldBytes = maxHeldResponseBytes
        self.isHTTP2 = isHTTP2
        self.keepAlive = keepAlive
        self.closeAfterAnswer = closeAfterAnswer
    }

    /// Bytes of a response have gone to the caller (a refusal, or a relayed answer in part): the gateway can no
    /// longer answer with its own error.
    public var answerStarted: Bool {
        switch state {
        case .exchanging(let exchange): if case .streaming = exchange.response { true } else { false }
        case .journalingOutcome(let streamed): streamed
        case .journalingRefusal, .answered, .closed: true
        case .admitting, .journalingIntent, .connecting, .backingOff: false
        }
    }

    /// The call's time limits: its operation family's once admitted.
    public var timeouts: UpstreamTimeouts { target?.timeouts ?? .defaults }

    /// The current attempt's head is on the wire.
    public var attemptSent: Bool {
        if case .exchanging(let exchange) = state { exchange.sent } else { false }
    }

    /// A request with the machine in this state may be followed by the connection's next one.
    public var isDone: Bool { state == .answered && requestEnded }

    // MARK: - Admission and the intent

    /// The rate-limit stage let the call through: record the intent.
    public mutating func admitted(_ target: Target) -> Action {
        guard state == .admitting else { return Action() }
        self.target = target
        state = .journalingIntent
        return Action(step: .journalIntent)
    }

    /// The intent record is durable (`recorded`), or could not be written.
    public mutating func intentJournaled(recorded: Bool, now: Int64) -> Action {
        guard state == .journalingIntent, let target else { return Action() }
        guard recorded else {
            return refuse(GatewayError(.auditUnavailable, "The audit trail cannot record this call, so it was not forwarded."))
        }
        deadline = now + target.timeouts.total
        // No limit a later step sets can run out before this: a response head is due no sooner than
        // `responseHead` after this moment, a body read no sooner than `bodyIdle`.
        var action = arm(min(deadline, now + min(target.timeouts.responseHead, target.timeouts.bodyIdle)))
        state = .backingOff(attempt: 0)
        action.step = .admitAttempt
        return action
    }

    // MARK: - Attempts

    /// The breaker's verdict on the next attempt.
    public mutating func attemptAdmission(_ admission: CircuitBreaker.Admission, now: Int64) -> Action {
        guard case .backingOff(let previous) = state, let target else { return Action() }
        switch admission {
        case .reject(let retryAfter):
            return giveUp(last: lastFailure ?? .notSent, breakerRetryAfter: retryAfter, note: nil)
        case .probe: probe = true
        case .allow: probe = false
        }
        attempts = previous + 1
        state = .connecting(attempt: attempts)
        return Action(step: .connect(timeout: min(target.timeouts.connect, max(1, deadline - now))))
    }

    /// Attempt `attempt`'s connection is ready: send over it, or give it back if the call moved on.
    public mutating func connected(attempt: Int, now: Int64) -> Action {
        guard state == .connecting(attempt: attempt), let target else {
            return Action(upstream: .release(reusable: true), breaker: probe ? .abandonedProbe : nil)
        }
        let due = now + min(target.timeouts.responseHead, max(1, deadline - now))
        state = .exchanging(Exchange(attempt: attempt, sent: false, response: .awaitingHead(due: due)))
        // Only a retry's attempt can be due before the watchdog fires (the first is covered by how it was armed).
        var action = due < watchdogAt ? arm(due) : Action()
        action.step = .send
        return action
    }

    /// Attempt `attempt` got no connection: Klarna saw nothing of it.
    public mutating func connectFailed(attempt: Int, now: Int64, decide: RetryDecider) -> Action {
        guard state == .connecting(attempt: attempt) else { return Action(breaker: probe ? .abandonedProbe : nil) }
        return attemptFailed(.notSent, now: now, decide: decide)
    }

    /// Attempt `attempt`'s request head has been written to the connection.
    public mutating func headWritten(attempt: Int) {
        guard case .exchanging(var exchange) = state, exchange.attempt == attempt else { return }
        exchange.sent = true
        state = .exchanging(exchange)
    }

    /// The retry wait is over.
    public mutating func retryTimerFired() -> Action {
        guard case .backingOff = state else { return Action() }
        return Action(step: .admitAttempt)
    }

    // MARK: - Klarna's answer

    /// Klarna's response head arrived; `keepAlive` is whether its connection may be reused.
    public mutating func responseHead(keepAlive: Bool, now: Int64) {
        guard case .exchanging(var exchange) = state, case .awaitingHead = exchange.response else { return }
        upstreamKeepAlive = keepAlive
        exchange.response = .holding(bytes: 0, lastRead: now)
        state = .exchanging(exchange)
    }

    /// A part of Klarna's answer body arrived.
    public mutating func responseBody(bytes: Int, now: Int64) -> Action {
        guard case .exchanging(var exchange) = state else { return Action() }
        switch exchange.response {
        case .awaitingHead:
            return Action()
        case .holding(let held, _):
            let total = held + bytes
            if total > maxHeldBytes {
                exchange.response = .streaming(lastRead: now)
                state = .exchanging(exchange)
                return Action(step: .holdBody(release: true))
            }
            exchange.response = .holding(bytes: total, lastRead: now)
            state = .exchanging(exchange)
            return Action(step: .holdBody(release: false))
        case .streaming:
            exchange.response = .streaming(lastRead: now)
            state = .exchanging(exchange)
            return Action(step: .relayBody)
        }
    }

    /// Klarna's answer ended with `status`: retry it (a 429, 503 or 500 `TIMEOUT` not yet released, as the policy
    /// allows), or record its outcome before the answer is released.
    public mutating func responseEnded(_ answer: AttemptFailure, now: Int64, decide: RetryDecider) -> Action {
        guard case .exchanging(let exchange) = state, case .answered(let status, _, _) = answer else { return Action() }
        var action = Action(
            upstream: .release(reusable: upstreamKeepAlive && requestEnded),
            breaker: .attemptEnded(failed: answer.countsAgainstHost, probe: probe))
        let streamed = exchange.response.isStreaming
        if Self.retryableStatuses.contains(status) && !streamed {
            lastFailure = answer
            if case .retry(let delay, let reason) = decide(answer, exchange.attempt, repeatable, deadline) {
                state = .backingOff(attempt: exchange.attempt)
                action.step = .retry(delay: delay, reason: reason)
                return action
            }
        }
        state = .journalingOutcome(streamed: streamed)
        action.timers = .cancel
        action.step = .journalOutcome
        return action
    }

    /// The outcome record is durable (`recorded`), or could not be written.
    public mutating func outcomeJournaled(recorded: Bool) -> Action {
        guard case .journalingOutcome(let streamed) = state else { return Action() }
        if recorded {
            state = .answered
            return Action(step: .writeAnswer(closeAfter: (!isHTTP2 && !keepAlive) || closeAfterAnswer))
        }
        if streamed {
            // Part of the answer already went out: cutting it short is the only honest signal left.
            state = .closed
            return Action(step: .close)
        }
        var action = refuse(GatewayError(
            .auditUnavailable,
            "Klarna answered, but the audit trail could not record the outcome; retry with the same Klarna-Idempotency-Key."))
        action.dropHeldAnswer = true
        return action
    }

    /// The upstream connection failed or closed before the answer ended.
    public mutating func upstreamFailed(now: Int64, decide: RetryDecider) -> Action {
        guard case .exchanging(let exchange) = state else { return Action() }
        if exchange.response.isStreaming {
            state = .closed
            return Action(upstream: .abort, breaker: .attemptEnded(failed: true, probe: probe), timers: .cancel, step: .close)
        }
        var action = attemptFailed(exchange.sent ? .lostAfterSend : .notSent, now: now, decide: decide)
        action.upstream = .abort
        return action
    }

    /// The call's one timer fired at `now`: act on the limit that ran out, or re-arm for the next that could.
    public mutating func watchdogFired(now: Int64, decide: RetryDecider) -> Action {
        guard let target, !isOver else { return Action() }
        watchdogAt = .max
        if now >= deadline { return deadlinePassed() }
        var next = deadline
        switch state {
        case .exchanging(let exchange):
            switch exchange.response {
            case .awaitingHead(let due):
                if now >= due { return timedOut(now: now, decide: decide) }
                // The head may arrive at any moment and start the body's idle limit.
                next = min(next, due, now + target.timeouts.bodyIdle)
            case .holding(_, let lastRead):
                let due = lastRead + target.timeouts.bodyIdle
                if now >= due { return timedOut(now: now, decide: decide) }
                next = min(next, due)
            case .streaming(let lastRead):
                let due = lastRead + target.timeouts.bodyIdle
                if now >= due {
                    // Part of the answer already went out: cutting the connection is the only honest signal left.
                    state = .closed
                    return Action(upstream: .abort, timers: .cancel, step: .close)
                }
                next = min(next, due)
            }
        default:
            // Waiting for a connection or a retry: the next attempt's limits start no sooner than now.
            next = min(next, now + min(target.timeouts.responseHead, target.timeouts.bodyIdle))
        }
        return arm(next)
    }

    // MARK: - The caller's side

    /// A part of the request body arrived: keep it (and forward it while an attempt is on a connection), refuse an
    /// oversize body, or discard what follows an answer.
    public mutating func requestBody(bytes: Int) -> Action {
        requestBytes += bytes
        let tooLarge = requestBytes > maxBodyBytes
        switch state {
        case .admitting, .journalingIntent, .connecting, .backingOff, .exchanging:
            if tooLarge { return refuse(GatewayError(.payloadTooLarge, "The body is larger than \(maxBodyBytes) bytes.")) }
            if case .exchanging = state { return Action(step: .keepBody(forward: true)) }
            return Action(step: .keepBody(forward: false))
        case .journalingOutcome, .journalingRefusal, .answered:
            // Discarding the rest of the body, but no more than the limit allows. The close waits for the answer:
            // closing first would send the caller an end of stream instead of its answer.
            guard tooLarge else { return Action() }
            if state == .answered {
                state = .closed
                return Action(step: .close)
            }
            closeAfterAnswer = true
            return Action()
        case .closed:
            return Action()
        }
    }

    /// The request's end arrived.
    public mutating func requestEnd() -> Action {
        requestEnded = true
        switch state {
        case .exchanging: return Action(step: .forwardEnd)
        case .answered: return Action(step: .finished)
        default: return Action()
        }
    }

    /// The byte stream below the call went bad (a framing error, a stalled body): refuse and close.
    public mutating func requestFailed(_ error: GatewayError) -> Action {
        closeAfterAnswer = true
        return refuse(error)
    }

    /// The caller's connection (or stream) is gone.
    public mutating func clientGone() -> Action {
        var action = Action(timers: .cancel)
        if case .exchanging = state {
            action.upstream = .abort
            if probe { action.breaker = .abandonedProbe }
        }
        state = .closed
        return action
    }

    // MARK: - Refusals

    /// Ends the call with the gateway's own error, unless part of an answer already went out (then the connection
    /// is cut: it is the only honest signal left).
    public mutating func refuse(_ error: GatewayError, note: Note? = nil) -> Action {
        var action = Action(timers: .cancel)
        if case .exchanging = state { action.upstream = .abort }
        guard !answerStarted else {
            state = .closed
            action.step = .close
            return action
        }
        state = .journalingRefusal
        // Decided now, not when the record is written: by then the rest of an oversize body may have arrived.
        // A body still arriving is read and discarded (it is bounded by the body limit), so the connection stays
        // usable; an oversize body or a caller that asked for it closes the connection.
        refusalClosesConnection = !isHTTP2 && (closeAfterAnswer || !keepAlive || (!requestEnded && error.code == .payloadTooLarge))
        action.step = .refuse(error, note: note)
        return action
    }

    /// The refusal's record was written (or not: refusing forwards nothing, so the refusal goes out either way).
    public mutating func refusalJournaled() -> Action {
        guard state == .journalingRefusal else { return Action() }
        state = .answered
        return Action(step: .writeRefusal(
            connectionClose: refusalClosesConnection, closeAfter: refusalClosesConnection || closeAfterAnswer))
    }

    // MARK: - Internals

    /// Statuses whose answer may be retried (503, 429, 500 `TIMEOUT`); the policy decides.
    static let retryableStatuses: Set<Int> = [429, 500, 503]

    private var repeatable: Bool {
        IdempotencyKeys.isRepeatable(method: target?.method ?? "", key: target?.idempotencyKey)
    }

    /// The answer is decided: timers no longer matter.
    private var isOver: Bool {
        switch state {
        case .journalingOutcome, .journalingRefusal, .answered, .closed, .admitting, .journalingIntent: true
        case .connecting, .exchanging, .backingOff: false
        }
    }

    private mutating func arm(_ time: Int64) -> Action {
        watchdogAt = time
        return Action(timers: .arm(at: time))
    }

    /// An attempt ended without an answer: tell the breaker, then retry or give up as the policy says.
    private mutating func attemptFailed(_ failure: AttemptFailure, now: Int64, decide: RetryDecider) -> Action {
        if failure.leavesOutcomeUnknown { outcomeUnknown = true }
        lastFailure = failure
        let breaker = BreakerReport.attemptEnded(failed: failure.countsAgainstHost, probe: probe)
        switch decide(failure, attempts, repeatable, deadline) {
        case .retry(let delay, let reason):
            state = .backingOff(attempt: attempts)
            return Action(breaker: breaker, step: .retry(delay: delay, reason: reason))
        case .stop(let stop):
            var action = giveUp(last: failure, breakerRetryAfter: nil, note: .notRetried(stop))
            action.breaker = breaker
            return action
        }
    }

    /// No response head, or a stalled body, in time.
    private mutating func timedOut(now: Int64, decide: RetryDecider) -> Action {
        var action = attemptFailed(.timedOut, now: now, decide: decide)
        action.upstream = .abort
        return action
    }

    /// The call's total deadline passed before it ended.
    private mutating func deadlinePassed() -> Action {
        var last = lastFailure ?? .timedOut
        var breaker: BreakerReport?
        var upstream = UpstreamDisposal.keep
        if case .exchanging(let exchange) = state {
            if exchange.response.isStreaming {
                state = .closed
                return Action(upstream: .abort, timers: .cancel, step: .close)
            }
            upstream = .abort
            breaker = .attemptEnded(failed: true, probe: probe)
            outcomeUnknown = true
            last = .timedOut
        }
        var action = giveUp(last: last, breakerRetryAfter: nil, note: .deadlinePassed)
        action.upstream = upstream
        action.breaker = breaker
        return action
    }

    /// Ends the call with the policy's error, or with the breaker's fast 503 when nothing was ever sent.
    private mutating func giveUp(last: AttemptFailure, breakerRetryAfter: Int64?, note: Note?) -> Action {
        let authority = target?.authority ?? ""
        var error = RetryPolicy.finalError(
            last: last, outcomeUnknown: outcomeUnknown, method: target?.method ?? "", idempotencyKey: target?.idempotencyKey,
            authority: authority, attempts: attempts)
            ?? GatewayError(.upstreamUnavailable, "Klarna (\(authority)) could not be reached.")
        if let breakerRetryAfter, error.code == .upstreamUnavailable {
            let seconds = max(1, (breakerRetryAfter + 999_999_999) / 1_000_000_000)
            error = GatewayError(
                .upstreamUnavailable,
                "Klarna (\(authority)) is failing, so the gateway's circuit breaker is open and nothing was forwarded; retry after \(seconds) s.",
                headers: [.init("Retry-After", String(seconds))])
        }
        return refuse(error, note: note)
    }
}

extension CallMachine.Response {
    var isStreaming: Bool { if case .streaming = self { true } else { false } }
}
