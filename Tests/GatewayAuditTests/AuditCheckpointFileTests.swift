import Foundation
import GRDB
import Testing

@testable import GatewayAudit

/// The shippable checkpoint file is appended and synced off the writer's thread: a slow file never holds a commit.
@Suite("Audit checkpoint file")
struct AuditCheckpointFileTests {
    /// A checkpoint file that cannot be opened until someone reads it (a FIFO with no reader) stands in for a disk
    /// whose sync hangs: on the writer's thread (as before), the records after the first checkpoint never committed.
    @Test("records commit while the checkpoint file is stuck; the lines follow, in order, once it moves", .timeLimit(.minutes(2)))
    func stuckCheckpointFileDoesNotHoldCommits() async throws {
        let dir = try TempDir()
        let fifo = dir.path("checkpoints.jsonl")
        // Required: without the FIFO the writer would make a plain file, and nothing would be stuck.
        try #require(mkfifo(fifo, 0o600) == 0, "mkfifo: \(String(cString: strerror(errno)))")
        let writer = Fixtures.writer(dir, checkpointEvery: 2)
        // Checkpoints at 2, 4, 6, 8 and 10, each stuck behind the first one's open.
        try await Fixtures.write(writer, count: 10)
        #expect(writer.health.lastSeq == 10)
        let stored = try await DatabaseQueue(path: dir.path("audit.sqlite")).read { db in
            try Int64.fetchAll(db, sql: "SELECT seq FROM audit_checkpoints ORDER BY seq")
        }
        #expect(stored == [2, 4, 6, 8, 10])

        // A reader lets the file move: the five lines arrive, in the order they were signed.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        try #require(reader >= 0)
        defer { close(reader) }
        let shipped = Task { () -> String in
            var text = ""
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = ContinuousClock.now + .seconds(60)
            while text.split(separator: "\n").count < 5 && ContinuousClock.now < deadline {
                let count = read(reader, &buffer, buffer.count)
                if count > 0 { text += String(decoding: buffer[..<count], as: UTF8.self) } else { try? await Task.sleep(for: .milliseconds(10)) }
            }
            return text
        }
        let lines = await shipped.value.split(separator: "\n").compactMap { AuditCheckpoint(jsonLine: $0) }
        #expect(lines.map { $0.seq } == [2, 4, 6, 8, 10])
        await writer.shutdown()
    }
}
