import Crypto
import Foundation
import GatewayApp
import GatewayAudit
import GatewayCore
import GRDB
import Logging
import NIOCore
import NIOPosix
import Testing

/// The journal chain as the gateway wires it: the audit writer decides, the access log follows.
@Suite struct JournalChainTests {
    /// A call's waiter: remembers what it was told, on the loop.
    private final class Waiter: JournalWaiter, @unchecked Sendable {  // @unchecked: told on `loop` only
        let told: EventLoopPromise<CallRecord.Phase>

        init(loop: any EventLoop) { told = loop.makePromise() }

        func journaled(_ result: Result<Void, any Error>, phase: CallRecord.Phase) {
            switch result {
            case .success: told.succeed(phase)
            case .failure(let error): told.fail(error)
            }
        }
    }

    private static func record(_ phase: CallRecord.Phase, _ requestID: String) -> CallRecord {
        var record = CallRecord(phase: phase, requestID: requestID, timeMicros: UTCTime.nowMicros(), method: "GET", path: "/v1/x")
        record.status = phase == .intent ? nil : 200
        return record
    }

    /// Records one record through `chain` on `loop` and returns the phase its waiter was told.
    private static func journal(_ record: CallRecord, _ chain: JournalChain, on loop: any EventLoop) async throws -> CallRecord.Phase {
        let waiter = Waiter(loop: loop)
        loop.execute { chain.record(record, on: loop, waiter: waiter) }
        return try await waiter.told.futureResult.get()
    }

    @Test func theAccessLogFollowsOnlyRecordsItLogsAndEveryWaiterIsToldEitherWay() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("journal-chain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let audit = AuditWriter(
            path: directory.appendingPathComponent("audit.sqlite").path, nodeID: "test", mode: .commit,
            signer: AuditSigner(privateKey: Curve25519.Signing.PrivateKey(), keyID: "test"))
        let logs = LogCapture()
        var quiet = logs.logger()
        quiet.logLevel = .warning

        let chain = JournalChain([audit, AccessLogJournal(logger: logs.logger())])
        #expect(chain.wouldRecord(phase: .intent), "the audit trail records intents")
        #expect(try await Self.journal(Self.record(.intent, "req-intent"), chain, on: loop) == .intent)
        #expect(try await Self.journal(Self.record(.outcome, "req-outcome"), chain, on: loop) == .outcome)
        #expect(try await Self.journal(Self.record(.refusal, "req-refusal"), chain, on: loop) == .refusal)

        let atWarning = JournalChain([audit, AccessLogJournal(logger: quiet)])
        #expect(try await Self.journal(Self.record(.outcome, "req-quiet"), atWarning, on: loop) == .outcome)
        #expect(!AccessLogJournal(logger: quiet).wouldRecord(phase: .outcome))

        await audit.shutdown()
        // The access log was told of the outcome and the refusal after the audit trail had them, not of the intent,
        // and nothing at `warning`; the audit trail has all four.
        let text = logs.text
        #expect(text.contains("request_id=req-outcome"))
        #expect(text.contains("request_id=req-refusal"))
        #expect(!text.contains("req-intent"))
        #expect(!text.contains("req-quiet"))
        let store = try DatabaseQueue(path: directory.appendingPathComponent("audit.sqlite").path)
        let recorded = try await store.read { try String.fetchAll($0, sql: "SELECT request_id FROM audit_records ORDER BY seq") }
        #expect(recorded == ["req-intent", "req-outcome", "req-refusal", "req-quiet"])
        try await group.shutdownGracefully()
    }
}
