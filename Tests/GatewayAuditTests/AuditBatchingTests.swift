import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import Testing

@testable import GatewayAudit

/// Records made on the event loops, as the data plane makes them: gathered per loop, handed over once per tick,
/// answered with one task per loop; the chain and the guarantees are the same as for a caller off the loops.
@Suite struct AuditBatchingTests {
    /// Each caller records its next call once the previous one is answered, on its own loop, like a connection.
    private static func call(
        _ writer: AuditWriter, caller: Int, calls: Int, on loop: any EventLoop, from index: Int = 0
    ) -> EventLoopFuture<Void> {
        guard index < calls else { return loop.makeSucceededVoidFuture() }
        return writer.record(Fixtures.record(caller * 1_000 + index), on: loop).flatMap {
            call(writer, caller: caller, calls: calls, on: loop, from: index + 1)
        }
    }

    @Test func recordsMadeOnTheLoopsAreAllChainedAndAnsweredOnTheirLoops() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, checkpointEvery: 100)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        var callers: [EventLoopFuture<Void>] = []
        for caller in 0..<48 {
            let loop = group.next()
            callers.append(loop.flatSubmit { Self.call(writer, caller: caller, calls: 20, on: loop) })
        }
        for caller in callers { try await caller.get() }
        await writer.shutdown()
        try await group.shutdownGracefully()
        let report = try AuditVerifier.verify(
            path: dir.path("audit.sqlite"), trustedCheckpointFile: dir.url.appendingPathComponent("checkpoints.jsonl"),
            publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 48 * 20)
    }

    /// A call as the data plane makes one: its intent, then its outcome once the intent is durable, each answered
    /// through the call's waiter (no future) on the call's loop, with the record's phase.
    private final class Call: JournalWaiter, @unchecked Sendable {  // @unchecked: touched on `loop` only
        let writer: AuditWriter
        let loop: any EventLoop
        let index: Int
        let done: EventLoopPromise<Void>
        var told: [CallRecord.Phase] = []
        var offLoop = false

        init(writer: AuditWriter, loop: any EventLoop, index: Int) {
            self.writer = writer
            self.loop = loop
            self.index = index
            done = loop.makePromise()
        }

        func start() { writer.record(Fixtures.record(index, phase: .intent), on: loop, waiter: self) }

        func journaled(_ result: Result<Void, any Error>, phase: CallRecord.Phase) {
            if !loop.inEventLoop { offLoop = true }
            told.append(phase)
            guard case .success = result else { return done.succeed() }
            if phase == .intent { writer.record(Fixtures.record(index, phase: .outcome), on: loop, waiter: self) } else { done.succeed() }
        }
    }

    @Test func waitersAreToldOnceEachWithTheirPhaseOnTheirLoop() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, checkpointEvery: 100)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var calls: [Call] = []
        for index in 0..<200 {
            let call = Call(writer: writer, loop: group.next(), index: index)
            calls.append(call)
            call.loop.execute { call.start() }
        }
        for call in calls { try await call.done.futureResult.get() }
        for call in calls {
            let (told, offLoop) = try await call.loop.submit { (call.told, call.offLoop) }.get()
            #expect(told == [.intent, .outcome], "call \(call.index)")
            #expect(!offLoop, "call \(call.index) was told off its loop")
        }
        await writer.shutdown()
        // After shutdown a waiter is told the refusal at once, before `record` returns.
        let late = Call(writer: writer, loop: group.next(), index: 999)
        let toldAtOnce = try await late.loop.submit { late.start(); return late.told }.get()
        #expect(toldAtOnce == [.intent])
        try await group.shutdownGracefully()
        let report = try AuditVerifier.verify(
            path: dir.path("audit.sqlite"), trustedCheckpointFile: dir.url.appendingPathComponent("checkpoints.jsonl"),
            publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 400)
    }

    /// In `async` mode a record is answered before it leaves its loop: shutdown must still write it.
    @Test func asyncRecordsStillOnTheirLoopAtShutdownAreWritten() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, mode: .async)
        let loop = Fixtures.loop
        try await loop.submit {
            for index in 1...50 { _ = writer.record(Fixtures.record(index), on: loop) }
        }.get()
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.lastSeq == 50)
    }

    /// The gateway stops its event loops before it shuts the writer down: the writer must not wait for them.
    @Test(.timeLimit(.minutes(1))) func shutdownAfterTheLoopsStoppedReturnsAndWritesWhatTheyHeld() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, mode: .async)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        try await loop.submit {
            for index in 1...5 { _ = writer.record(Fixtures.record(index), on: loop) }
        }.get()
        try await group.shutdownGracefully()
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.lastSeq == 5)
    }

    /// A record made on a loop after shutdown is refused, and its future still completes.
    @Test func aRecordOnALoopAfterShutdownIsRefused() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        let loop = Fixtures.loop
        try await loop.flatSubmit { writer.record(Fixtures.record(1), on: loop) }.get()
        await writer.shutdown()
        await #expect(throws: AuditError.self) { try await loop.flatSubmit { writer.record(Fixtures.record(2), on: loop) }.get() }
    }

    /// A trail written by the writer before records were batched per loop and encoded on the writer thread (an
    /// archive made by that version's `audit prune`): the canonical form did not change, so it still verifies.
    @Test func aTrailWrittenByThePreviousWriterStillVerifies() throws {
        let archive = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/v1-trail-before-loop-batching.jsonl")
        let report = try AuditVerifier.verifyArchive(archive)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 100)
        #expect(report.newestCheckpointSeq == 100)
    }

    /// The `v1` text encoding (which records from before `v2` hash, and exports show), escapes and non-ASCII
    /// included.
    @Test func canonicalEncodingOfUnusualValues() {
        var entry = AuditEntry(Fixtures.record(1), nodeID: "node-\"1\"")
        entry.canonicalVersion = AuditCanonical.textVersion
        entry.seq = 7
        entry.path = "/v2/ä\u{1}\n\\"
        entry.callerID = ""
        entry.status = nil
        entry.upstreamLatencyMicros = -5
        let text = AuditCanonical.encode(entry)
        #expect(text.hasPrefix(#"{"v":1,"seq":7,"node_id":"node-\"1\"","time_us":1790000000000001,"#))
        #expect(text.contains(#","caller_id":"","#))
        #expect(text.contains(#","path":"/v2/ä\u0001\n\\","#))
        #expect(text.contains(#","status":null,"#))
        #expect(text.contains(#","upstream_latency_us":-5,"#))
        #expect(text.hasSuffix(#","upstream_cert_fingerprint":"\#(String(repeating: "cd", count: 32))"}"#))
    }
}

extension AuditBatchingTests {
    /// An empty string is stored as an empty string, not NULL: the hash covers the difference.
    @Test func emptyStringsAreStoredAsEmptyStrings() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        var record = Fixtures.record(1)
        record.facts.callerID = ""
        record.idempotencyKey = ""
        try await writer.record(record, on: Fixtures.loop).get()
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
    }
}
