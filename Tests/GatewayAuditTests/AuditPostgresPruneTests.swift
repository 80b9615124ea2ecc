import Foundation
import Testing

@testable import GatewayAudit

/// `audit prune` on a PostgreSQL trail: each node's chain is cut at its own signed checkpoint, archived in its own
/// section, and what remains still verifies, against the shipped checkpoint files too.
@Suite struct AuditPostgresPruneTests {
    static let start: Int64 = 1_790_000_000_000_000

    @Test(.enabled(if: AuditPostgresTests.serverURL != nil || AuditPostgresTests.required, "needs PostgreSQL: run under bin/with-postgres"))
    func everyNodesChainIsCutAtItsOwnCheckpointAndTheRestStillVerifies() async throws {
        let url = try await AuditPostgresTests.database()
        let dir = try TempDir()
        for (node, count) in [("gw-a", 50), ("gw-b", 35)] {
            let writer = AuditPostgresTests.writer(url, node: node, checkpointFile: dir.path("\(node).jsonl"))
            for index in 1...count {
                try await writer.record(Fixtures.record(index, timeMicros: Self.start + Int64(index) * 1_000_000), on: Fixtures.loop).get()
            }
            await writer.shutdown()
        }
        // Records 1…24 of each node precede the date; the newest checkpoint among them is 20 on both.
        let archive = dir.path("archive-1.jsonl")
        let result = try AuditPruner.prune(path: url, beforeMicros: Self.start + 25_000_000, archive: archive)
        #expect(result.anchors.map(\.nodeID) == ["gw-a", "gw-b"])
        #expect(result.anchors.map(\.seq) == [20, 20])
        #expect(result.archivedRecords == 40)

        let shipped = ["gw-a", "gw-b"].map { URL(fileURLWithPath: dir.path("\($0).jsonl")) }
        let report = try AuditVerifier.verify(path: url, trustedCheckpointFiles: shipped, publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.chains.map(\.anchorSeq) == [20, 20])
        #expect(report.chains.map(\.recordsChecked) == [30, 15])

        let archived = try AuditVerifier.verifyArchive(URL(fileURLWithPath: archive), publicKeys: Fixtures.trustedKeys)
        #expect(archived.isIntact, "\(archived.problems)")
        #expect(archived.chains.map(\.nodeID) == ["gw-a", "gw-b"])
        #expect(archived.recordsChecked == 40)

        // A writer restarted on a pruned chain continues it, and a later prune cuts from the earlier anchor.
        let restarted = AuditPostgresTests.writer(url, node: "gw-b")
        try await Fixtures.write(restarted, count: 2, start: 36)
        await restarted.shutdown()
        let again = try AuditPruner.prune(path: url, beforeMicros: Int64.max, archive: dir.path("archive-2.jsonl"))
        #expect(again.anchors.map(\.seq) == [50, 37])
        #expect(again.archivedRecords == 30 + 17)
        let final = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
        #expect(final.isIntact, "\(final.problems)")
        #expect(final.chains.map(\.lastSeq) == [50, 37])
        let second = try AuditVerifier.verifyArchive(URL(fileURLWithPath: dir.path("archive-2.jsonl")), publicKeys: Fixtures.trustedKeys)
        #expect(second.isIntact, "\(second.problems)")
    }

    @Test(.enabled(if: AuditPostgresTests.serverURL != nil || AuditPostgresTests.required, "needs PostgreSQL: run under bin/with-postgres"))
    func anEditedSectionIsNamedByItsNode() async throws {
        let url = try await AuditPostgresTests.database()
        let dir = try TempDir()
        for node in ["gw-a", "gw-b"] {
            let writer = AuditPostgresTests.writer(url, node: node)
            try await Fixtures.write(writer, count: 12)
            await writer.shutdown()
        }
        let archive = dir.path("archive.jsonl")
        _ = try AuditPruner.prune(path: url, beforeMicros: Int64.max, archive: archive)
        var lines = try String(contentsOfFile: archive, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let target = try #require(lines.firstIndex { $0.contains("\"node_id\":\"gw-b\"") && $0.contains("\"req-4\"") })
        lines[target] = Substring(lines[target].replacingOccurrences(of: "\"req-4\"", with: "\"req-X\""))
        try lines.joined(separator: "\n").write(toFile: archive, atomically: true, encoding: .utf8)
        let report = try AuditVerifier.verifyArchive(URL(fileURLWithPath: archive), publicKeys: Fixtures.trustedKeys)
        #expect(report.firstProblem?.kind == .edited)
        #expect(report.firstProblem?.seq == 4)
        #expect(report.firstProblem?.nodeID == "gw-b")
    }
}
