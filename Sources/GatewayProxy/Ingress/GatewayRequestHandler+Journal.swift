import GatewayCore
import NIOCore

/// A call's records go to the journal with the call itself as the waiter: the result comes back through
/// `CallState.journaled` to the handler, with no future and no closure per record.
extension GatewayRequestHandler {
    /// Hands the call's record to the journal; its result arrives at `journaled(_:phase:call:)`. A record no journal
    /// would keep (audit off, the access log at `warning` or the record an intent) is not handed over: handing it
    /// over copies it, and the journal would only answer at once that it is recorded. An answer given before this
    /// returns, the call's own or the journal's, is held to the end of the loop's turn (`TurnEndAnswers`), except an
    /// HTTP/2 stream's refusal: written inside the connection's read, as an early refusal is, NIO's multiplexer
    /// already flushes it with the read's other streams, once; from the turn's task each would flush alone.
    func journal(call: CallState, context: ChannelHandlerContext) {
        call.journalsInFlight += 1
        call.journalHandler = self
        let phase = call.record.phase
        call.handingOver = !(isHTTP2 && phase == .refusal)
        if runtime.journal.wouldRecord(phase: phase) {
            runtime.journal.record(call.record, on: context.eventLoop, waiter: call)
        } else {
            call.journaled(.success(()), phase: phase)
        }
        call.handingOver = false
    }

    /// Counts the finished call in the metrics, reading its record's fields in place.
    private func observe(_ call: CallState) {
        runtime.metrics.observe(
            family: call.record.facts.operation?.family, status: call.record.status,
            gatewayErrorCode: call.record.gatewayErrorCode, merchantID: call.record.facts.merchantID,
            upstreamLatencyMicros: call.record.upstreamLatencyMicros, started: call.started, memo: loopMemo.metrics)
    }

    /// A record of `call` is durable or failed: the machine learns it if the call is still this handler's.
    func journaled(_ result: Result<Void, any Error>, phase: CallRecord.Phase, call: CallState) {
        let recorded = result.recorded
        call.trace.journalEnded(recorded: recorded)
        switch phase {
        case .intent:
            guard let context, self.call === call else { return }
            let action = call.machine.intentJournaled(recorded: recorded, now: UpstreamClock.now)
            if case .admitAttempt = action.step { runtime.retryBudget.deposit() }
            perform(action, call: call, context: context)
        case .outcome:
            // A refusal that replaced the outcome meanwhile is counted when its own record is.
            if recorded, call.record.phase == .outcome { observe(call) }
            guard let context, self.call === call else { return }
            perform(call.machine.outcomeJournaled(recorded: recorded), call: call, context: context)
        case .refusal:
            observe(call)
            guard let context, self.call === call else { return }
            perform(call.machine.refusalJournaled(), call: call, context: context)
        }
    }
}

extension CallState: JournalWaiter {
    /// Passes a record's result to the handler that journaled it; the handler is held only while a record is in
    /// flight, as the closure this replaces held it.
    func journaled(_ result: Result<Void, any Error>, phase: CallRecord.Phase) {
        guard let handler = journalHandler else { return }
        if handingOver, let loop = handler.context?.eventLoop {
            // The journal's span ends with its answer, not with the rest of the turn.
            trace.journalEnded(recorded: result.recorded)
            return handler.loopMemo.turnEnd.hold(self, result, phase: phase, on: loop)
        }
        journalsInFlight -= 1
        if journalsInFlight == 0 { journalHandler = nil }
        handler.journaled(result, phase: phase, call: self)
    }
}
