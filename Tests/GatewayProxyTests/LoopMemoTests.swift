import CoreMetrics
import Dispatch
import Foundation
import GatewayCore
import NIOCore
import NIOEmbedded
import NIOPosix
import Prometheus
import Synchronization
import Testing

@testable import GatewayProxy

/// What each event loop keeps so that a call takes no lock the loops share: the breakers found through it, the
/// retry budget's full flag, the snapshot it read last and the metrics series it made, each checked against the
/// shared state it stands for.
@Suite("Loop memos")
struct LoopMemoTests {
    /// An empty snapshot: what the memos hold is its identity, not its content.
    static func snapshot(_ version: Int64) -> GatewaySnapshot {
        GatewaySnapshot(
            partners: [], merchants: [], callers: [], access: AccessPolicy(callers: [:]),
            catalogue: try! OperationCatalogue(tsv: String(contentsOf: CallHandlerTests.Rig.catalogueFile, encoding: .utf8)),
            settings: PipelineSettings(), version: version)
    }

    @Test("a breaker found through two loops' memos is one breaker: failures through one open it for the other, a success through either closes it")
    func breakerSharedAcrossMemos() {
        let board = BreakerBoard(settings: .init(failureThreshold: 3, openDurationMs: 1_000))
        let (first, second) = (BreakerBoard.Memo(), BreakerBoard.Memo())
        let host = "klarna.example:443"
        #expect(board.host(host, memo: first) === board.host(host, memo: second))
        #expect(board.host(host, memo: first).admit(now: 0) == .allow)
        // Two failures, then a success through the other loop: the count starts again (the lock path clears it).
        board.host(host, memo: first).record(failed: true, probe: false, now: 1)
        board.host(host, memo: second).record(failed: true, probe: false, now: 2)
        board.host(host, memo: second).record(failed: false, probe: false, now: 3)
        board.host(host, memo: first).record(failed: true, probe: false, now: 4)
        board.host(host, memo: first).record(failed: true, probe: false, now: 5)
        #expect(board.host(host, memo: second).admit(now: 6) == .allow, "opened after two failures in a row")
        #expect(board.states.first?.state == "closed")
        board.host(host, memo: second).record(failed: true, probe: false, now: 7)
        #expect(board.states.first?.state == "open")
        #expect(board.host(host, memo: first).admit(now: 8) == .reject(retryAfter: 1_000_000_000 - 1))
        // After the open time the next attempt is the probe; its success closes the breaker for both loops.
        #expect(board.host(host, memo: second).admit(now: 1_000_000_007) == .probe)
        #expect(board.host(host, memo: first).admit(now: 1_000_000_008) != .allow, "a second attempt went out beside the probe")
        board.host(host, memo: second).record(failed: false, probe: true, now: 1_000_000_009)
        #expect(board.host(host, memo: first).admit(now: 1_000_000_010) == .allow)
        #expect(board.states.map(\.state) == ["closed"])
    }

    @Test("a success reported while the breaker is open closes it, as before the fast path")
    func successWhileOpenCloses() {
        let board = BreakerBoard(settings: .init(failureThreshold: 1, openDurationMs: 1_000))
        let memo = BreakerBoard.Memo()
        board.host("h", memo: memo).record(failed: true, probe: false, now: 0)
        #expect(board.host("h", memo: memo).admit(now: 1) != .allow)
        // An attempt admitted before the breaker opened came back fine.
        board.host("h", memo: memo).record(failed: false, probe: false, now: 2)
        #expect(board.host("h", memo: memo).admit(now: 3) == .allow)
    }

    @Test("the retry budget: a full budget ignores deposits, a withdrawal is refilled by deposits at the configured ratio")
    func retryBudgetRefills() {
        let budget = SharedRetryBudget(settings: .init(ratio: 0.5, capacity: 2))
        budget.deposit()
        #expect(budget.update { $0.tokens } == 2)
        #expect(budget.update { $0.withdraw() })
        #expect(budget.update { $0.withdraw() })
        #expect(!budget.update { $0.withdraw() }, "the budget was empty")
        // Not full any more, so deposits take the lock and count: four at 0.5 make it full again, a fifth does nothing.
        for _ in 0..<3 { budget.deposit() }
        #expect(budget.update { $0.tokens } == 1.5)
        budget.deposit()
        budget.deposit()
        #expect(budget.update { $0.tokens } == 2)
    }

    @Test("a loop's snapshot memo gives the snapshot installed last, also right after a replace, and lets go of it when told")
    func snapshotMemoFollowsReplace() {
        let holder = SnapshotHolder(Self.snapshot(1))
        let memo = SnapshotHolder.Memo()
        #expect(holder.current(memo: memo).version == 1)
        #expect(holder.current(memo: memo) === holder.current)
        weak var replaced: GatewaySnapshot?
        do {
            let second = Self.snapshot(2)
            replaced = second
            holder.replace(with: second)
            #expect(holder.current(memo: memo) === second, "the memo kept the snapshot a reload replaced")
        }
        holder.replace(with: Self.snapshot(3))
        #expect(replaced != nil, "the memo holds the snapshot it read last until it reads again or forgets")
        memo.forget()
        #expect(replaced == nil, "the memo kept a snapshot after forget()")
        #expect(holder.current(memo: memo).version == 3)
    }

    @Test("installing a snapshot returns once every loop has let go of the one it replaced, without a call on that loop")
    func installReleasesIdleLoops() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        weak var replaced: GatewaySnapshot?
        let holder: SnapshotHolder = {
            let first = Self.snapshot(1)
            replaced = first
            return SnapshotHolder(first)
        }()
        let runtime = try ProxyRuntime(
            snapshots: holder, group: group, upstreamCAPEM: nil, limits: IngressLimits(),
            resilience: ResiliencePolicy(), maxIdlePerKey: 1, journal: CallHandlerTests.HeldJournal(), logger: .init(label: "test"))
        for loop in group.makeIterator() {
            try await loop.submit { _ = runtime.snapshots.current(memo: runtime.loopMemos.memo(for: loop)!.snapshot).version }.get()
        }
        // One loop is busy: install waits for it, and the replaced snapshot stays alive until it has let go.
        let busy = DispatchSemaphore(value: 0)
        let blocked = group.next()
        blocked.execute { busy.wait() }
        let installed = Flag()
        let installing = Task {
            await runtime.install(Self.snapshot(2))
            installed.value.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!installed.value.withLock { $0 }, "install returned while a loop had not let go of the snapshot")
        #expect(replaced != nil)
        busy.signal()
        await installing.value
        #expect(replaced == nil, "an idle loop kept the replaced snapshot")
        try await group.shutdownGracefully()
    }

    @Test("calls counted through two loops' memos and without one add up in one series once the memos are flushed; a memo hands its calls over by itself every batch")
    func metricsThroughMemos() {
        let registry = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let (first, second) = (GatewayMetrics.Memo(), GatewayMetrics.Memo())
        func answered(_ memo: GatewayMetrics.Memo?) {
            metrics.observe(
                family: "payment-transaction", status: 200, gatewayErrorCode: nil, merchantID: "m1", upstreamLatencyMicros: 10,
                started: .now(), memo: memo)
        }
        for memo in [first, first, second, nil] { answered(memo) }
        metrics.observe(
            family: "payment-transaction", status: 429, gatewayErrorCode: "GATEWAY_RATE_LIMITED", merchantID: "m1",
            upstreamLatencyMicros: nil, started: .now(), memo: second)
        let requests = #"kgw_requests_total{family="payment-transaction",status="200",outcome="answered"}"#
        #expect(registry.emitToString().contains(requests + " 1"), "the call counted without a memo is in the series at once")
        first.flush()
        second.flush()
        var text = registry.emitToString()
        #expect(text.contains(requests + " 4"), "\(text)")
        #expect(text.contains(#"kgw_requests_total{family="payment-transaction",status="429",outcome="refused"} 1"#), "\(text)")
        #expect(text.contains(#"kgw_gateway_errors_total{code="GATEWAY_RATE_LIMITED"} 1"#), "\(text)")
        #expect(text.contains(#"kgw_request_duration_seconds_count{family="payment-transaction",outcome="answered"} 4"#), "\(text)")
        #expect(text.contains(#"kgw_upstream_duration_seconds_count{family="payment-transaction",outcome="answered"} 4"#), "\(text)")
        #expect(text.contains(#"kgw_request_duration_seconds_count{family="payment-transaction",outcome="refused"} 1"#), "\(text)")
        // Without a flush: the batch's last call hands the whole batch over.
        for _ in 0..<GatewayMetrics.Memo.batch { answered(first) }
        text = registry.emitToString()
        #expect(text.contains(requests + " \(4 + GatewayMetrics.Memo.batch)"), "\(text)")
    }
}

/// Set once by one task, read by another.
private final class Flag: Sendable {
    let value = Mutex(false)
}
