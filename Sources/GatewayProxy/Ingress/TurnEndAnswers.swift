import GatewayCore
import NIOCore

/// Journal answers that came back at once (audit off, the access log, `async` mode, a refusal by the journal), held
/// until the event loop has handled every event that was ready, then told to their calls together.
///
/// Told at once, a call went on inside the read that brought its request or answer: it wrote to Klarna (or to the
/// caller) and woke that side's process, then the loop read the next connection, parsed and planned again, and so on,
/// alternating between code paths and between processes on two cores. Held to the turn's end, the loop reads and
/// plans every ready call first and then sends them one after the other, as the audit writer's batches already made it
/// do in `commit` mode: 31% less CPU per call with audit off (docs/performance.md, sixteenth round). Nothing waits
/// longer than the rest of the turn; the order of a loop's calls is kept. (The audit writer's `LoopQueue` gathers a
/// turn's records the same way, under a lock, since its batches leave the loop.)
final class TurnEndAnswers {
    private typealias Answer = (call: CallState, result: Result<Void, any Error>, phase: CallRecord.Phase)
    private var held: [Answer] = []
    /// The storage of the batch told last, emptied: swapped in for the next, so a turn costs no allocation.
    private var spare: [Answer] = []
    /// Tasks asked of the loop so far: one per turn that held an answer (read by the tests).
    private(set) var tasksAsked = 0

    /// Holds `call`'s answer until the end of the turn of `loop` (the loop this memo is used on).
    func hold(_ call: CallState, _ result: Result<Void, any Error>, phase: CallRecord.Phase, on loop: any EventLoop) {
        held.append((call, result, phase))
        // NIO runs tasks after the I/O events of the turn it is handling: one task per turn, not one per call.
        guard held.count == 1 else { return }
        tasksAsked += 1
        loop.assumeIsolated().execute { self.tell() }
    }

    /// Tells the held calls, in the order they were held. An answer held while telling (a call that went on to a
    /// refusal the journal answered at once) goes into the next batch, whose first `hold` asks for a task of its own.
    private func tell() {
        var batch: [Answer] = []
        swap(&batch, &spare)
        swap(&batch, &held)
        for answer in batch { answer.call.journaled(answer.result, phase: answer.phase) }
        batch.removeAll(keepingCapacity: true)
        spare = batch
    }
}
