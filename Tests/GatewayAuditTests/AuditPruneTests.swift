import Foundation
import Testing

@testable import GatewayAudit

@Suite struct AuditPruneTests {
    static let start: Int64 = 1_790_000_000_000_000

    @Test func pruneArchivesUpToACheckpointAndTheChainStaysVerifiable() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        for index in 1...50 {
            try await writer.record(Fixtures.record(index, timeMicros: Self.start + Int64(index) * 1_000_000), on: Fixtures.loop).get()
        }
        let archive = dir.path("archive-1.jsonl")
        // Pruning while the writer runs: records 1…24 precede the date, the newest checkpoint among them is 20.
        let result = try AuditPruner.prune(path: dir.path("audit.sqlite"), beforeMicros: Self.start + 25_000_000, archive: archive)
        #expect(result.archivedRecords == 20)
        #expect(result.anchor?.seq == 20)
        try await Fixtures.write(writer, count: 5, start: 51)
        await writer.shutdown()

        let report = try AuditVerifier.verify(
            path: dir.path("audit.sqlite"), trustedCheckpointFile: dir.url.appendingPathComponent("checkpoints.jsonl"),
            publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.anchorSeq == 20)
        #expect(report.recordsChecked == 35)

        let archived = try AuditVerifier.verifyArchive(URL(fileURLWithPath: archive), publicKeys: Fixtures.trustedKeys)
        #expect(archived.isIntact, "\(archived.problems)")
        #expect(archived.recordsChecked == 20)
        #expect(archived.newestCheckpointSeq == 20)

        // A restarted writer resumes after a prune that left no rows behind the anchor either.
        let again = try AuditPruner.prune(path: dir.path("audit.sqlite"), beforeMicros: Int64.max, archive: dir.path("archive-2.jsonl"))
        #expect(again.anchor?.seq == 55)
        let restarted = Fixtures.writer(dir)
        try await Fixtures.write(restarted, count: 3, start: 56)
        await restarted.shutdown()
        let final = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(final.isIntact, "\(final.problems)")
        #expect(final.lastSeq == 58)
    }

    @Test func editedArchiveIsDetected() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        for index in 1...12 {
            try await writer.record(Fixtures.record(index, timeMicros: Self.start + Int64(index)), on: Fixtures.loop).get()
        }
        await writer.shutdown()
        let archive = dir.path("archive.jsonl")
        _ = try AuditPruner.prune(path: dir.path("audit.sqlite"), beforeMicros: Int64.max, archive: archive)
        var text = try String(contentsOfFile: archive, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"req-4\"", with: "\"req-X\"")
        try text.write(toFile: archive, atomically: true, encoding: .utf8)
        let report = try AuditVerifier.verifyArchive(URL(fileURLWithPath: archive), publicKeys: Fixtures.trustedKeys)
        #expect(report.firstProblem?.kind == .edited)
        #expect(report.firstProblem?.seq == 4)
    }
}
