import GatewayCore
import Testing

/// Every transition of one call's machine, driven by events alone: no channel, no clock, no journal.
@Suite("Call state machine, without I/O")
struct CallMachineTests {
    typealias Action = CallMachine.Action
    static let ms: Int64 = 1_000_000
    /// connect 100 ms, handshake 200, response head 1 s, body idle 500 ms, total 10 s.
    static let timeouts = UpstreamTimeouts(connectMs: 100, tlsHandshakeMs: 200, responseHeadMs: 1_000, bodyIdleMs: 500, totalMs: 10_000)
    static let post = CallMachine.Target(method: "POST", idempotencyKey: "key-1", authority: "klarna:443", timeouts: timeouts)
    static let keyless = CallMachine.Target(method: "POST", idempotencyKey: nil, authority: "klarna:443", timeouts: timeouts)

    /// Records what the machine asks the retry policy and answers as told.
    final class Decider {
        var asked: [(AttemptFailure, Int, Bool, Int64)] = []
        var answer: RetryDecision
        init(_ answer: RetryDecision) { self.answer = answer }
        func decide(_ failure: AttemptFailure, _ attempt: Int, _ repeatable: Bool, _ deadline: Int64) -> RetryDecision {
            asked.append((failure, attempt, repeatable, deadline))
            return answer
        }
    }

    static func machine(http2: Bool = false, keepAlive: Bool = true, maxBody: Int = 1_000, maxHeld: Int = 100) -> CallMachine {
        CallMachine(maxBodyBytes: maxBody, maxHeldResponseBytes: maxHeld, isHTTP2: http2, keepAlive: keepAlive)
    }

    /// A machine whose intent was recorded at time 0, waiting for the breaker's verdict on its first attempt.
    static func awaitingAttempt(_ target: CallMachine.Target = post) -> CallMachine {
        var m = machine()
        _ = m.admitted(target)
        _ = m.intentJournaled(recorded: true, now: 0)
        return m
    }

    /// A machine whose first attempt is on a connection (sent when `sent`), the intent recorded at time 0.
    static func exchanging(_ target: CallMachine.Target = post, sent: Bool = true, keepAlive: Bool = true) -> CallMachine {
        var m = machine(keepAlive: keepAlive)
        _ = m.admitted(target)
        _ = m.intentJournaled(recorded: true, now: 0)
        _ = m.attemptAdmission(.allow, now: 0)
        _ = m.connected(attempt: 1, now: 0)
        if sent { m.headWritten(attempt: 1) }
        return m
    }

    @Test("admitted: the intent is journaled first; a second admission is ignored")
    func admission() {
        var m = Self.machine()
        #expect(m.state == .admitting)
        #expect(m.admitted(Self.post) == Action(step: .journalIntent))
        #expect(m.state == .journalingIntent)
        #expect(m.admitted(Self.post) == Action())
    }

    @Test("a recorded intent starts the deadline and arms the one timer at the first limit that could run out")
    func intentRecorded() {
        var m = Self.machine()
        _ = m.admitted(Self.post)
        let action = m.intentJournaled(recorded: true, now: 5 * Self.ms)
        #expect(action == Action(timers: .arm(at: 505 * Self.ms), step: .admitAttempt))
        #expect(m.deadline == 10_005 * Self.ms)
        #expect(m.state == .backingOff(attempt: 0))
        #expect(m.intentJournaled(recorded: true, now: 6 * Self.ms) == Action(), "a second report is stale")
    }

    @Test("an intent that cannot be written refuses the call with 503 and forwards nothing")
    func intentFailed() {
        var m = Self.machine()
        _ = m.admitted(Self.post)
        let action = m.intentJournaled(recorded: false, now: 0)
        guard case .refuse(let error, nil) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .auditUnavailable)
        #expect(action.timers == .cancel)
        #expect(m.state == .journalingRefusal)
        #expect(m.attempts == 0)
    }

    @Test("the breaker's allow, probe and reject")
    func breakerVerdicts() {
        var m = Self.awaitingAttempt()
        #expect(m.attemptAdmission(.probe, now: 9_950 * Self.ms) == Action(step: .connect(timeout: 50 * Self.ms)), "the connect limit is cut to the deadline")
        #expect(m.probe && m.attempts == 1 && m.state == .connecting(attempt: 1))

        var rejected = Self.awaitingAttempt()
        let action = rejected.attemptAdmission(.reject(retryAfter: 1_500 * Self.ms), now: 0)
        guard case .refuse(let error, nil) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .upstreamUnavailable)
        #expect(error.extraHeaders.map(\.value) == ["2"], "Retry-After rounds up to whole seconds")
        #expect(rejected.attempts == 0)
    }

    @Test("a connection for the current attempt sends; one for a call that moved on goes back to the pool, a probe abandoned")
    func connections() {
        var m = Self.awaitingAttempt()
        _ = m.attemptAdmission(.probe, now: 0)
        #expect(m.connected(attempt: 1, now: 10 * Self.ms) == Action(step: .send), "the first attempt's head is covered by the armed timer")
        #expect(m.state == .exchanging(.init(attempt: 1, sent: false, response: .awaitingHead(due: 1_010 * Self.ms))))
        #expect(!m.attemptSent)
        m.headWritten(attempt: 2)
        #expect(!m.attemptSent, "another attempt's write changes nothing")
        m.headWritten(attempt: 1)
        #expect(m.attemptSent)
        #expect(m.connected(attempt: 1, now: 0) == Action(upstream: .release(reusable: true), breaker: .abandonedProbe))
        #expect(m.connectFailed(attempt: 1, now: 0) { _, _, _, _ in .stop(.final) } == Action(breaker: .abandonedProbe))
    }

    @Test("a failed connection is retried whatever the method: Klarna saw nothing; the retry's head may be due before the timer")
    func connectFailedRetried() {
        var m = Self.awaitingAttempt(Self.keyless)
        _ = m.attemptAdmission(.allow, now: 0)
        let decider = Decider(.retry(delay: 100 * Self.ms, reason: .connect))
        let action = m.connectFailed(attempt: 1, now: 100 * Self.ms, decide: decider.decide)
        #expect(action == Action(breaker: .attemptEnded(failed: true, probe: false), step: .retry(delay: 100 * Self.ms, reason: .connect)))
        #expect(decider.asked.count == 1 && decider.asked[0].0 == .notSent && decider.asked[0].1 == 1 && !decider.asked[0].2)
        #expect(m.state == .backingOff(attempt: 1))
        #expect(!m.outcomeUnknown)
        #expect(m.retryTimerFired() == Action(step: .admitAttempt))
        _ = m.attemptAdmission(.allow, now: 200 * Self.ms)
        #expect(m.attempts == 2)
        // The timer was armed at 500 ms (body idle); this attempt's head is due at 1,200 ms: no re-arm.
        #expect(m.connected(attempt: 2, now: 200 * Self.ms) == Action(step: .send))
        _ = m.watchdogFired(now: 500 * Self.ms) { _, _, _, _ in .stop(.final) }
        #expect(m.watchdogAt == 1_000 * Self.ms, "re-armed at the next body-idle moment, before the head is due")
    }

    @Test("the retry timer of a call that ended does nothing")
    func staleRetryTimer() {
        var m = Self.exchanging()
        _ = m.clientGone()
        #expect(m.retryTimerFired() == Action())
    }

    @Test("an answer is held, then streams past the hold limit")
    func holding() {
        var m = Self.exchanging()
        m.responseHead(keepAlive: true, now: 10)
        #expect(m.responseBody(bytes: 60, now: 20) == Action(step: .holdBody(release: false)))
        #expect(!m.answerStarted)
        #expect(m.responseBody(bytes: 60, now: 30) == Action(step: .holdBody(release: true)))
        #expect(m.answerStarted)
        #expect(m.responseBody(bytes: 10, now: 40) == Action(step: .relayBody))
        #expect(m.state == .exchanging(.init(attempt: 1, sent: true, response: .streaming(lastRead: 40))))
    }

    @Test("an answer's end: its connection is reusable only if both sides kept it whole; the outcome is journaled before release")
    func answered() {
        var m = Self.exchanging()
        m.responseHead(keepAlive: true, now: 0)
        let ok = AttemptFailure.answered(status: 201, klarnaErrorCode: nil, retryAfter: nil)
        let decider = Decider(.stop(.final))
        #expect(m.responseEnded(ok, now: 0, decide: decider.decide) == Action(
            upstream: .release(reusable: false), breaker: .attemptEnded(failed: false, probe: false), timers: .cancel, step: .journalOutcome),
            "the request has not ended: the connection is mid-request")
        #expect(decider.asked.isEmpty, "a 201 is not a retry question")
        #expect(m.state == .journalingOutcome(streamed: false))
        #expect(m.requestEnd() == Action(), "the request's end waits for the answer's")
        #expect(m.outcomeJournaled(recorded: true) == Action(step: .writeAnswer(closeAfter: false)))
        #expect(m.isDone)

        var ended = Self.exchanging()
        #expect(ended.requestEnd() == Action(step: .forwardEnd))
        ended.responseHead(keepAlive: true, now: 0)
        #expect(ended.responseEnded(ok, now: 0, decide: decider.decide).upstream == .release(reusable: true))

        var closing = Self.exchanging(keepAlive: false)
        _ = closing.requestEnd()
        closing.responseHead(keepAlive: false, now: 0)
        #expect(closing.responseEnded(ok, now: 0, decide: decider.decide).upstream == .release(reusable: false))
        #expect(closing.outcomeJournaled(recorded: true) == Action(step: .writeAnswer(closeAfter: true)))
    }

    @Test("503, 429 and 500 are retried as the policy says; when it stops, or once streamed, Klarna's answer is relayed")
    func retryableAnswers() {
        let unavailable = AttemptFailure.answered(status: 503, klarnaErrorCode: nil, retryAfter: nil)
        var retried = Self.exchanging()
        retried.responseHead(keepAlive: true, now: 0)
        let action = retried.responseEnded(unavailable, now: 0, decide: Decider(.retry(delay: Self.ms, reason: .unavailable)).decide)
        #expect(action.step == .retry(delay: Self.ms, reason: .unavailable))
        #expect(action.breaker == .attemptEnded(failed: true, probe: false))
        #expect(retried.state == .backingOff(attempt: 1))

        var stopped = Self.exchanging()
        stopped.responseHead(keepAlive: true, now: 0)
        #expect(stopped.responseEnded(unavailable, now: 0, decide: Decider(.stop(.attemptsExhausted)).decide).step == .journalOutcome)

        var streamed = Self.exchanging()
        streamed.responseHead(keepAlive: true, now: 0)
        _ = streamed.responseBody(bytes: 500, now: 0)
        let decider = Decider(.retry(delay: Self.ms, reason: .unavailable))
        #expect(streamed.responseEnded(unavailable, now: 0, decide: decider.decide).step == .journalOutcome)
        #expect(decider.asked.isEmpty, "part of the answer went out: it cannot be taken back")
        #expect(streamed.state == .journalingOutcome(streamed: true))
    }

    @Test("an outcome that cannot be written: the held answer is dropped for a 503; a streamed one is cut")
    func outcomeFailed() {
        var held = Self.exchanging()
        held.responseHead(keepAlive: true, now: 0)
        _ = held.responseEnded(.answered(status: 200, klarnaErrorCode: nil, retryAfter: nil), now: 0) { _, _, _, _ in .stop(.final) }
        let action = held.outcomeJournaled(recorded: false)
        guard case .refuse(let error, nil) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .auditUnavailable)
        #expect(action.dropHeldAnswer)

        var streamed = Self.exchanging()
        streamed.responseHead(keepAlive: true, now: 0)
        _ = streamed.responseBody(bytes: 500, now: 0)
        _ = streamed.responseEnded(.answered(status: 200, klarnaErrorCode: nil, retryAfter: nil), now: 0) { _, _, _, _ in .stop(.final) }
        #expect(streamed.outcomeJournaled(recorded: false) == Action(step: .close))
        #expect(streamed.state == .closed)
    }

    @Test("upstream gone after the head was sent: the outcome is unknown, and a key-less POST is not sent twice")
    func upstreamGoneAfterSend() {
        var m = Self.exchanging(Self.keyless)
        let decider = Decider(.stop(.unsafe))
        let action = m.upstreamFailed(now: 0, decide: decider.decide)
        #expect(decider.asked.first?.0 == .lostAfterSend)
        #expect(decider.asked.first?.2 == false, "a key-less POST is not repeatable")
        #expect(action.upstream == .abort)
        #expect(action.breaker == .attemptEnded(failed: true, probe: false))
        guard case .refuse(let error, .notRetried(.unsafe)) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .upstreamOutcomeUnknown)
        #expect(m.outcomeUnknown)
    }

    @Test("upstream gone before the head was written: nothing reached Klarna, so 503 after the attempts")
    func upstreamGoneBeforeSend() {
        var m = Self.exchanging(sent: false)
        let action = m.upstreamFailed(now: 0) { _, _, _, _ in .stop(.attemptsExhausted) }
        guard case .refuse(let error, _) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .upstreamUnavailable)
        #expect(!m.outcomeUnknown)
    }

    @Test("upstream gone while the answer streams: the caller's connection is cut")
    func upstreamGoneWhileStreaming() {
        var m = Self.exchanging()
        m.responseHead(keepAlive: true, now: 0)
        _ = m.responseBody(bytes: 500, now: 0)
        #expect(m.upstreamFailed(now: 0) { _, _, _, _ in .stop(.final) }
            == Action(upstream: .abort, breaker: .attemptEnded(failed: true, probe: false), timers: .cancel, step: .close))
    }

    @Test("the watchdog: no head in time, a stalled body, a stall while streaming, and re-arming for the next limit")
    func watchdog() {
        let never: CallMachine.RetryDecider = { _, _, _, _ in .stop(.attemptsExhausted) }
        var early = Self.exchanging()
        #expect(early.watchdogFired(now: 500 * Self.ms, decide: never) == Action(timers: .arm(at: 1_000 * Self.ms)))

        var noHead = Self.exchanging()
        let action = noHead.watchdogFired(now: 1_000 * Self.ms, decide: never)
        #expect(action.upstream == .abort)
        guard case .refuse(let error, _) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .upstreamOutcomeUnknown)

        var stalled = Self.exchanging()
        stalled.responseHead(keepAlive: true, now: 100 * Self.ms)
        #expect(stalled.watchdogFired(now: 400 * Self.ms, decide: never) == Action(timers: .arm(at: 600 * Self.ms)))
        let decider = Decider(.retry(delay: Self.ms, reason: .timeout))
        let timedOut = stalled.watchdogFired(now: 600 * Self.ms, decide: decider.decide)
        #expect(timedOut.upstream == .abort && timedOut.step == .retry(delay: Self.ms, reason: .timeout))
        #expect(decider.asked.first?.0 == .timedOut)

        var streaming = Self.exchanging()
        streaming.responseHead(keepAlive: true, now: 0)
        _ = streaming.responseBody(bytes: 500, now: 0)
        #expect(streaming.watchdogFired(now: 500 * Self.ms, decide: never) == Action(upstream: .abort, timers: .cancel, step: .close))

        var waiting = Self.awaitingAttempt()
        _ = waiting.attemptAdmission(.allow, now: 0)
        #expect(waiting.watchdogFired(now: 500 * Self.ms, decide: never) == Action(timers: .arm(at: 1_000 * Self.ms)),
                "waiting for a connection: the next attempt's limits start no sooner than now")
    }

    @Test("the deadline: mid-exchange the outcome is unknown; between attempts the last failure speaks; after the answer nothing")
    func deadline() {
        let never: CallMachine.RetryDecider = { _, _, _, _ in .stop(.final) }
        var exchanging = Self.exchanging()
        let action = exchanging.watchdogFired(now: 10_000 * Self.ms, decide: never)
        #expect(action.upstream == .abort && action.breaker == .attemptEnded(failed: true, probe: false))
        guard case .refuse(let error, .deadlinePassed) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .upstreamOutcomeUnknown)

        var backingOff = Self.awaitingAttempt()
        _ = backingOff.attemptAdmission(.allow, now: 0)
        _ = backingOff.connectFailed(attempt: 1, now: 0) { _, _, _, _ in .retry(delay: Self.ms, reason: .connect) }
        let late = backingOff.watchdogFired(now: 10_000 * Self.ms, decide: never)
        guard case .refuse(let unavailable, .deadlinePassed) = late.step else { Issue.record("\(late)"); return }
        #expect(unavailable.code == .upstreamUnavailable)
        #expect(late.upstream == .keep)

        var over = Self.exchanging()
        over.responseHead(keepAlive: true, now: 0)
        _ = over.responseEnded(.answered(status: 200, klarnaErrorCode: nil, retryAfter: nil), now: 0, decide: never)
        #expect(over.watchdogFired(now: 20_000 * Self.ms, decide: never) == Action())
    }

    @Test("request body: kept while pending, forwarded while exchanging, refused past the limit, discarded after the answer")
    func requestBody() {
        var m = Self.machine(maxBody: 100)
        #expect(m.requestBody(bytes: 40) == Action(step: .keepBody(forward: false)))
        _ = m.admitted(Self.post)
        #expect(m.requestBody(bytes: 40) == Action(step: .keepBody(forward: false)))
        let action = m.requestBody(bytes: 40)
        guard case .refuse(let error, nil) = action.step else { Issue.record("\(action)"); return }
        #expect(error.code == .payloadTooLarge)
        #expect(m.requestBody(bytes: 10) == Action(), "discarded while the refusal is journaled")
        #expect(m.requestEnd() == Action())
        #expect(m.refusalJournaled() == Action(step: .writeRefusal(connectionClose: true, closeAfter: true)),
                "an oversize body still arriving when refused closes the connection, even if its end came since")

        var forwarding = Self.exchanging()
        #expect(forwarding.requestBody(bytes: 10) == Action(step: .keepBody(forward: true)))
    }

    @Test("after a refusal, an oversize rest of the body closes the connection once the answer is out")
    func oversizeAfterRefusal() {
        var m = Self.machine(maxBody: 100)
        let refusal = m.refuse(GatewayError(.unauthenticated, "no"))
        #expect(refusal.step == .refuse(GatewayError(.unauthenticated, "no"), note: nil))
        #expect(m.requestBody(bytes: 200) == Action())
        #expect(m.closeAfterAnswer)
        #expect(m.refusalJournaled() == Action(step: .writeRefusal(connectionClose: false, closeAfter: true)))
        #expect(m.requestBody(bytes: 1) == Action(step: .close), "past the limit after the answer: close now")
    }

    @Test("a refusal keeps the connection when the request has ended and the caller keeps it; never closes an HTTP/2 connection by header")
    func refusalConnection() {
        var kept = Self.machine()
        _ = kept.requestEnd()
        _ = kept.refuse(GatewayError(.unauthenticated, "no"))
        #expect(kept.refusalJournaled() == Action(step: .writeRefusal(connectionClose: false, closeAfter: false)))
        #expect(kept.isDone)
        #expect(kept.refusalJournaled() == Action(), "written once")

        var closing = Self.machine(keepAlive: false)
        _ = closing.refuse(GatewayError(.unauthenticated, "no"))
        #expect(closing.refusalJournaled() == Action(step: .writeRefusal(connectionClose: true, closeAfter: true)))

        var h2 = Self.machine(http2: true, keepAlive: false)
        _ = h2.requestFailed(GatewayError(.badRequest, "framing"))
        #expect(h2.refusalJournaled() == Action(step: .writeRefusal(connectionClose: false, closeAfter: true)),
                "a bad stream is closed, its connection is not told to close")
    }

    @Test("a broken request stream mid-exchange: abort upstream, refuse, close; once an answer started, just close")
    func requestFailed() {
        var m = Self.exchanging()
        let action = m.requestFailed(GatewayError(.requestTimeout, "stalled"))
        #expect(action.upstream == .abort && action.timers == .cancel)
        #expect(m.refusalJournaled().step == .writeRefusal(connectionClose: true, closeAfter: true))

        var streaming = Self.exchanging()
        streaming.responseHead(keepAlive: true, now: 0)
        _ = streaming.responseBody(bytes: 500, now: 0)
        #expect(streaming.requestFailed(GatewayError(.requestTimeout, "stalled")) == Action(upstream: .abort, timers: .cancel, step: .close))
    }

    @Test("client gone: the exchange is aborted, a probe abandoned, and every later report is stale")
    func clientGone() {
        var m = Self.awaitingAttempt()
        _ = m.attemptAdmission(.probe, now: 0)
        _ = m.connected(attempt: 1, now: 0)
        #expect(m.clientGone() == Action(upstream: .abort, breaker: .abandonedProbe, timers: .cancel))
        #expect(m.state == .closed)
        m.responseHead(keepAlive: true, now: 0)
        #expect(m.responseBody(bytes: 1, now: 0) == Action())
        #expect(m.responseEnded(.answered(status: 200, klarnaErrorCode: nil, retryAfter: nil), now: 0) { _, _, _, _ in .stop(.final) } == Action())
        #expect(m.outcomeJournaled(recorded: true) == Action())
        #expect(m.refusalJournaled() == Action())
        #expect(m.requestEnd() == Action())

        var pending = Self.machine()
        _ = pending.admitted(Self.post)
        #expect(pending.clientGone() == Action(timers: .cancel))
        #expect(pending.intentJournaled(recorded: true, now: 0) == Action())
    }
}
