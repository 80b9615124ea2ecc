import GatewayCore
import NIOCore

/// What one event loop's calls remember between them: the snapshot, today's date, token answers, the upstream
/// hosts' breakers and the metrics series already made. Every connection of a loop shares its loop's memo, and no memo is ever touched by
/// two threads, so none takes a lock (a lock every loop shares moves its cache line between the cores on every call).
final class LoopMemo {
    /// The loop the memo belongs to.
    let loop: any EventLoop
    /// The snapshot the loop read last.
    let snapshot = SnapshotHolder.Memo()
    /// Today's date in UTC, for release availability.
    let calendarDay = CalendarDay()
    /// Token answers (docs/performance.md, tenth round).
    let tokens = CallerTokenCache()
    /// The breakers of the hosts this loop has called.
    let breakers = BreakerBoard.Memo()
    /// The per-call metrics series this loop has written.
    let metrics = GatewayMetrics.Memo()

    init(loop: any EventLoop) { self.loop = loop }
}

/// One `LoopMemo` per event loop, built with the runtime.
///
/// `@unchecked Sendable` so the runtime can hold the table: a memo is handed out only to handlers on its own loop.
final class LoopMemos: @unchecked Sendable {
    private let memos: PerEventLoop<LoopMemo>

    init(group: any EventLoopGroup) { memos = PerEventLoop(group) { LoopMemo(loop: $0) } }

    /// `loop`'s memo, to be used on `loop` only; nil for a loop outside the gateway's group.
    func memo(for loop: any EventLoop) -> LoopMemo? {
        loop.preconditionInEventLoop()
        return memos[loop]
    }

    /// Has every loop hand the calls its metrics memo counted to the shared series, on its own thread.
    func flushMetrics(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let flushed = memos.all.map { memo in
            let loop = memo.loop
            return loop.submit { self.memos[loop]?.metrics.flush() }
        }
        return EventLoopFuture.andAllSucceed(flushed, on: eventLoop)
    }

    /// Has every loop let go of the snapshot it read last, on its own thread.
    func forgetSnapshots() {
        for memo in memos.all {
            let loop = memo.loop
            loop.execute { self.memos[loop]?.snapshot.forget() }
        }
    }
}
