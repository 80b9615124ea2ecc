import GatewayCore
import NIOCore

/// What one event loop's calls remember between them: the snapshot, today's date, token answers, the upstream
/// hosts' breakers, the metrics series already made, and the journal answers held to the end of the loop's turn.
/// Every connection of a loop shares its loop's memo, and no memo is ever touched by two threads, so none takes a
/// lock (a lock every loop shares moves its cache line between the cores on every call).
final class LoopMemo {
    /// The snapshot the loop read last.
    let snapshot = SnapshotHolder.Memo()
    /// Today's date in UTC, for release availability.
    let calendarDay = CalendarDay()
    /// Token answers (docs/performance.md, tenth round).
    let tokens = CallerTokenCache()
    /// The breakers of the hosts this loop has called.
    let breakers = BreakerBoard.Memo()
    /// The per-call metrics series this loop has written, with the calls not yet handed to them; nil in a
    /// handler's own memo (a loop outside the gateway's group), which no scrape would flush.
    let metrics: GatewayMetrics.Memo?
    /// Journal answers that came back at once, told at the end of the loop's turn.
    let turnEnd = TurnEndAnswers()

    /// A loop's memo; `countsMetrics` only for a loop of the gateway's group, whose memo every scrape flushes.
    init(countsMetrics: Bool) {
        metrics = countsMetrics ? GatewayMetrics.Memo() : nil
    }
}

/// One `LoopMemo` per event loop, built with the runtime.
///
/// `@unchecked Sendable` so the runtime can hold the table: a memo is handed out only to handlers on its own loop.
final class LoopMemos: @unchecked Sendable {
    private let memos: PerEventLoop<LoopMemo>

    init(group: any EventLoopGroup) { memos = PerEventLoop(group) { _ in LoopMemo(countsMetrics: true) } }

    /// `loop`'s memo, to be used on `loop` only; nil for a loop outside the gateway's group.
    func memo(for loop: any EventLoop) -> LoopMemo? {
        loop.preconditionInEventLoop()
        return memos[loop]
    }

    /// Has every loop hand the calls its metrics memo counted to the shared series, on its own thread.
    func flushMetrics(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        memos.gather(on: eventLoop) { $0.metrics?.flush() }.map { _ in }
    }

    /// Has every loop let go of the snapshot it read last, on its own thread; returns once all have (a loop that
    /// has stopped never would: see `ProxyRuntime.install`).
    func forgetSnapshots() async {
        await memos.each { $0.snapshot.forget() }
    }
}
