import Dispatch
import Foundation
import GRDB
import Testing

@testable import GatewayAudit

/// A store that cannot be written must fail the futures (so the gateway refuses), and recover by itself.
@Suite struct AuditFailClosedTests {
    private func expectFailure(_ writer: AuditWriter, index: Int) async {
        await #expect(throws: AuditError.self) { try await writer.record(Fixtures.record(index), on: Fixtures.loop).get() }
    }

    @Test func readOnlyStoreFailsThenRecovers() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        try await Fixtures.write(writer, count: 3)
        // Tests run as root, which ignores file modes; query_only makes SQLite itself refuse writes (SQLITE_READONLY).
        try await writer.withWriterConnection { try $0.execute(sql: "PRAGMA query_only = 1") }
        await expectFailure(writer, index: 4)
        await expectFailure(writer, index: 5)
        let failing = writer.health
        #expect(!failing.isHealthy)
        #expect(failing.consecutiveFailures == 2)
        #expect(failing.lastError?.contains("readonly") == true)
        try await writer.withWriterConnection { try $0.execute(sql: "PRAGMA query_only = 0") }
        try await Fixtures.write(writer, count: 2, start: 6)
        #expect(writer.health.isHealthy)
        #expect(writer.health.lastSeq == 5)
        await writer.shutdown()
        #expect(try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys).isIntact)
    }

    @Test func fullStoreFailsThenRecovers() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        try await Fixtures.write(writer, count: 3)
        try await writer.withWriterConnection { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count")!
            try db.execute(sql: "PRAGMA max_page_count = \(pages)")
        }
        var failed = false
        for index in 4..<400 {
            do {
                try await writer.record(Fixtures.record(index), on: Fixtures.loop).get()
            } catch {
                failed = true
                break
            }
        }
        #expect(failed)
        #expect(!writer.health.isHealthy)
        #expect(writer.health.lastError?.contains("full") == true)
        await expectFailure(writer, index: 1000)
        try await writer.withWriterConnection { try $0.execute(sql: "PRAGMA max_page_count = 1073741823") }
        try await Fixtures.write(writer, count: 3, start: 1001)
        #expect(writer.health.isHealthy)
        await writer.shutdown()
        #expect(try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys).isIntact)
    }

    @Test func missingDirectoryFailsUntilItExists() async throws {
        let dir = try TempDir()
        let storeDir = dir.url.appendingPathComponent("not-yet")
        let writer = Fixtures.writer(dir, path: storeDir.appendingPathComponent("audit.sqlite").path)
        #expect(!writer.health.isHealthy)
        await expectFailure(writer, index: 1)
        try FileManager.default.createDirectory(at: storeDir, withIntermediateDirectories: true)
        try await Fixtures.write(writer, count: 2)
        #expect(writer.health.isHealthy)
        await writer.shutdown()
    }

    @Test func lockedStoreFailsPastTheDeadline() async throws {
        let dir = try TempDir()
        let writer = AuditWriter(
            path: dir.path("audit.sqlite"), nodeID: "node-1", signer: Fixtures.signer, lockTimeout: 0.2)
        try await Fixtures.write(writer, count: 1)
        let other = try DatabaseQueue(path: dir.path("audit.sqlite"))
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let released = DispatchSemaphore(value: 0)
        let holder = Thread {
            try? other.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                holding.signal()
                release.wait()
                try db.execute(sql: "COMMIT")
            }
            released.signal()
        }
        holder.start()
        holding.wait()
        await expectFailure(writer, index: 2)
        #expect(writer.health.lastError?.contains("locked") == true)
        release.signal()
        // The next write may wait only 0.2 s for the lock: it must be gone, however late the holder thread runs.
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                released.wait()
                continuation.resume()
            }
        }
        try await Fixtures.write(writer, count: 1, start: 3)
        #expect(writer.health.isHealthy)
        await writer.shutdown()
        try other.close()
    }

    @Test func fullQueueRefusesAtOnce() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, queueLimit: 3)
        let busy = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        // Hold the worker until the test has filled the queue, so nothing drains however slow the machine is.
        let blocker = Task {
            try await writer.withWriterConnection { _ in
                busy.signal()
                release.wait()
            }
        }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                busy.wait()
                continuation.resume()
            }
        }
        let accepted = (1...3).map { writer.record(Fixtures.record($0), on: Fixtures.loop) }
        await #expect(throws: AuditError.self) { try await writer.record(Fixtures.record(4), on: Fixtures.loop).get() }
        #expect(writer.health.queueFullRefusals == 1)
        release.signal()
        try await blocker.value
        for future in accepted { try await future.get() }
        await writer.shutdown()
    }

    @Test func asyncModeKeepsAFailedBatchRefusesMeanwhileAndWritesItLater() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, mode: .async)
        try await Fixtures.write(writer, count: 2)
        await writer.flush()
        try await writer.withWriterConnection { try $0.execute(sql: "PRAGMA query_only = 1") }
        // Acknowledged at once, then the batch fails: it is kept, and new calls are refused until it is written.
        try await writer.record(Fixtures.record(3), on: Fixtures.loop).get()
        await writer.flush()
        #expect(!writer.health.isHealthy)
        await expectFailure(writer, index: 4)
        try await writer.withWriterConnection { try $0.execute(sql: "PRAGMA query_only = 0") }
        await writer.flush()
        #expect(writer.health.isHealthy)
        #expect(writer.health.lastSeq == 3)
        try await writer.record(Fixtures.record(5), on: Fixtures.loop).get()
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.lastSeq == 4)
    }

    @Test func shutDownWriterRefuses() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        try await Fixtures.write(writer, count: 1)
        await writer.shutdown()
        await expectFailure(writer, index: 2)
    }
}
