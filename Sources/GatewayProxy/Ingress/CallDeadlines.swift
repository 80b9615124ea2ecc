import NIOCore

/// Told when a call's deadline passes: the request handler that serves it.
protocol CallDeadlineOwner: AnyObject {
    /// `call`'s deadline passed; it is no longer armed.
    func deadlineReached(_ call: CallState)
}

/// The watchdogs of every call on one event loop, behind one scheduled task, as nginx keeps one timer tree per
/// worker: a call arms its one deadline by entering a min-heap (no allocation once the heap has grown to the
/// loop's calls in flight), and leaves it when it ends. The loop's task is re-scheduled only when a deadline
/// earlier than every other comes in, which with uniform time limits is almost never: scheduling and cancelling
/// a NIO task per call cost three allocations and two heap operations in the loop's scheduler.
///
/// Used only on its loop (`@unchecked Sendable` so the per-loop table can be shared).
final class CallDeadlines: @unchecked Sendable {
    private struct Entry {
        let at: Int64
        let call: CallState
        let owner: any CallDeadlineOwner
    }

    let eventLoop: any EventLoop
    private var heap: [Entry] = []
    private var task: Scheduled<Void>?
    /// When `task` fires; `.max` when none is scheduled.
    private var taskAt: Int64 = .max

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    /// Calls armed now.
    var count: Int { heap.count }

    /// Arms (or moves) `call`'s deadline to `at` (`UpstreamClock`); `owner` is told when it passes.
    func arm(_ call: CallState, owner: any CallDeadlineOwner, at: Int64) {
        eventLoop.preconditionInEventLoop()
        disarm(call)
        heap.append(Entry(at: at, call: call, owner: owner))
        call.deadlineSlot = heap.count - 1
        siftUp(heap.count - 1)
        if at < taskAt { schedule(at) }
    }

    /// Takes `call` out, if it is armed.
    func disarm(_ call: CallState) {
        let slot = call.deadlineSlot
        guard slot >= 0 else { return }
        call.deadlineSlot = -1
        let last = heap.count - 1
        if slot != last {
            heap.swapAt(slot, last)
            heap[slot].call.deadlineSlot = slot
        }
        heap.removeLast()
        if slot < heap.count {
            siftDown(slot)
            siftUp(slot)
        }
        // The task stays: when it fires early it only re-arms for the new earliest deadline.
    }

    private func fire() {
        task = nil
        taskAt = .max
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        while let top = heap.first, top.at <= now {
            disarm(top.call)
            top.owner.deadlineReached(top.call)
        }
        if let next = heap.first, next.at < taskAt { schedule(next.at) }
    }

    private func schedule(_ at: Int64) {
        task?.cancel()
        taskAt = at
        task = eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, at)))) { self.fire() }
    }

    private func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].at < heap[parent].at else { return }
            swap(child, parent)
            child = parent
        }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            let right = left + 1
            let smaller = right < heap.count && heap[right].at < heap[left].at ? right : left
            guard heap[smaller].at < heap[parent].at else { return }
            swap(parent, smaller)
            parent = smaller
        }
    }

    private func swap(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        heap[a].call.deadlineSlot = a
        heap[b].call.deadlineSlot = b
    }
}
