import Foundation
import GRDB
import GatewayTestSupport
import Testing

@testable import GatewayAudit

@Suite struct AuditCrashTests {
    /// Every record acknowledged in `commit` mode is in the store after the writing process is killed with SIGKILL.
    @Test func acknowledgedRecordsSurviveKillNine() async throws {
        let dir = try TempDir()
        let path = dir.path("audit.sqlite")
        let child = try ChildProcess(ChildProcess.productPath("audit-writer-bench"), ["crash-child", path], directory: dir.url)
        try await child.waitForOutput("\n300\n")
        child.kill(SIGKILL)
        _ = try await child.wait()
        let acknowledged = child.stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(acknowledged.count >= 300)
        let stored = try await DatabaseQueue(path: path).read { db in
            try Set(String.fetchAll(db, sql: "SELECT request_id FROM audit_records"))
        }
        let missing = acknowledged.filter { !stored.contains("req-\($0)") }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(10))")
        let report = try AuditVerifier.verify(path: path)
        #expect(report.isIntact, "\(report.problems)")
    }
}
