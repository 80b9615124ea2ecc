extension CallMachine {
    /// What the handler does after an event, in this order: dispose of the upstream connection, report to the
    /// breaker, change the timers, then take the step.
    public struct Action: Sendable, Equatable {
        /// The upstream connection the call holds.
        public var upstream: UpstreamDisposal
        /// What the circuit breaker of Klarna's host learns.
        public var breaker: BreakerReport?
        /// The call's timers.
        public var timers: TimerChange
        /// The held answer (head and body) is dropped: it will not be sent.
        public var dropHeldAnswer: Bool
        /// What happens next.
        public var step: Step

        /// An action; by default nothing at all.
        public init(
            upstream: UpstreamDisposal = .keep, breaker: BreakerReport? = nil, timers: TimerChange = .keep,
            dropHeldAnswer: Bool = false, step: Step = .none
        ) {
            self.upstream = upstream
            self.breaker = breaker
            self.timers = timers
            self.dropHeldAnswer = dropHeldAnswer
            self.step = step
        }
    }

    /// What becomes of the upstream connection.
    public enum UpstreamDisposal: Sendable, Equatable {
        /// Keep it (or there is none).
        case keep
        /// Give it back to the pool after a complete exchange; closed unless `reusable`.
        case release(reusable: Bool)
        /// The exchange is abandoned midway: the connection cannot be reused.
        case abort
    }

    /// What the circuit breaker learns.
    public enum BreakerReport: Sendable, Equatable {
        /// An attempt ended; `failed` when it counts against the host.
        case attemptEnded(failed: Bool, probe: Bool)
        /// The half-open probe will not report: the call moved on without it.
        case abandonedProbe
    }

    /// The call's timers.
    public enum TimerChange: Sendable, Equatable {
        /// Leave them.
        case keep
        /// (Re)arm the one watchdog to fire at this `UpstreamClock` time.
        case arm(at: Int64)
        /// Stop every timer of the call.
        case cancel
    }

    /// Why the gateway gave up on Klarna, for the log line beside the refusal.
    public enum Note: Sendable, Equatable {
        /// The retry policy stopped.
        case notRetried(RetryStop)
        /// The call's total deadline passed.
        case deadlinePassed
    }

    /// What happens next.
    public enum Step: Sendable, Equatable {
        /// Nothing.
        case none
        /// Write the intent record; report with `intentJournaled`.
        case journalIntent
        /// Ask the breaker for the next attempt; report with `attemptAdmission`.
        case admitAttempt
        /// Take a pooled connection or open one within `timeout` nanoseconds; report with `connected` or
        /// `connectFailed`.
        case connect(timeout: Int64)
        /// Send the request (head, the body so far, its end if it came) over the new connection.
        case send
        /// Forget the failed attempt's answer and report `retryTimerFired` after `delay` nanoseconds.
        case retry(delay: Int64, reason: RetryReason)
        /// Journal this refusal; report with `refusalJournaled`.
        case refuse(GatewayError, note: Note?)
        /// Write the outcome record; report with `outcomeJournaled`.
        case journalOutcome
        /// Hold the body part; then, when `release`, send everything held: from here the answer streams.
        case holdBody(release: Bool)
        /// Send the body part to the caller.
        case relayBody
        /// Send the held answer and its end; close once written when `closeAfter`, else finish when the
        /// request has ended.
        case writeAnswer(closeAfter: Bool)
        /// Send the refusal (with `Connection: close` when `connectionClose`); close once written when
        /// `closeAfter`, else finish when the request has ended.
        case writeRefusal(connectionClose: Bool, closeAfter: Bool)
        /// Keep the request body part for a retry, and send it on when `forward`.
        case keepBody(forward: Bool)
        /// Send the request's end upstream.
        case forwardEnd
        /// Close the caller's connection.
        case close
        /// The call is over: the connection may read its next request.
        case finished
    }
}
