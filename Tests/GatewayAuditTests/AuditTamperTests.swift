import Foundation
import GRDB
import Testing

@testable import GatewayAudit

/// Each kind of tampering an investigator must be able to prove, done with raw SQL on a real store.
@Suite struct AuditTamperTests {
    private func verify(_ dir: TempDir, shipped: Bool = false) throws -> VerificationReport {
        try AuditVerifier.verify(
            path: dir.path("audit.sqlite"),
            trustedCheckpointFile: shipped ? dir.url.appendingPathComponent("checkpoints.jsonl") : nil,
            publicKeys: Fixtures.trustedKeys)
    }

    @Test func editedRecordIsNamed() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { try $0.execute(sql: "UPDATE audit_records SET status = 500 WHERE seq = 7") }
        let report = try verify(dir)
        #expect(!report.isIntact)
        #expect(report.firstProblem?.kind == .edited)
        #expect(report.firstProblem?.seq == 7)
        #expect(report.problemCount == 1)
    }

    @Test func deletedRecordIsNamed() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { try $0.execute(sql: "DELETE FROM audit_records WHERE seq = 12") }
        let report = try verify(dir)
        #expect(report.firstProblem?.kind == .deleted)
        #expect(report.firstProblem?.seq == 12)
    }

    @Test func reorderedRecordsAreNamed() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { db in
            try db.execute(sql: """
                UPDATE audit_records SET seq = -1 WHERE seq = 15;
                UPDATE audit_records SET seq = 15 WHERE seq = 16;
                UPDATE audit_records SET seq = 16 WHERE seq = -1;
                """)
        }
        let report = try verify(dir)
        #expect(report.firstProblem?.kind == .reordered)
        #expect(report.firstProblem?.seq == 15)
    }

    @Test func insertedRecordIsNamedEvenWithAValidLookingHash() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "UPDATE audit_records SET seq = -(seq + 1) WHERE seq >= 20")
            try db.execute(sql: "UPDATE audit_records SET seq = -seq WHERE seq < 0")
            let previous = try String.fetchOne(db, sql: "SELECT hash FROM audit_records WHERE seq = 19")!
            var forged = AuditEntry(Fixtures.record(999), nodeID: "node-1")
            forged.seq = 20
            forged.prevHash = previous
            forged.hash = AuditCanonical.chainHash(previous: previous, entry: forged)
            try db.execute(sql: AuditEntry.insertSQL, arguments: forged.insertArguments)
        }
        let report = try verify(dir)
        #expect(report.firstProblem?.kind == .inserted)
        #expect(report.firstProblem?.seq == 20)
    }

    @Test func truncatedTailIsDetectedAgainstTheShippedCheckpoint() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "DELETE FROM audit_records WHERE seq > 25")
            try db.execute(sql: "DELETE FROM audit_checkpoints WHERE seq > 20")
        }
        // The store alone cannot tell: this is why checkpoints are shipped elsewhere.
        #expect(try verify(dir).isIntact)
        let report = try verify(dir, shipped: true)
        #expect(report.firstProblem?.kind == .truncated)
        #expect(report.firstProblem?.seq == 26)
    }

    @Test func recomputedChainIsCaughtByTheSignedCheckpoint() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "UPDATE audit_records SET merchant_id = 'someone-else' WHERE seq = 5")
            var previous = try String.fetchOne(db, sql: "SELECT hash FROM audit_records WHERE seq = 4")!
            let rows = try Row.fetchAll(db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records WHERE seq >= 5 ORDER BY seq")
            for row in rows {
                var entry = AuditEntry(row: row)
                entry.prevHash = previous
                entry.hash = AuditCanonical.chainHash(previous: previous, entry: entry)
                previous = entry.hash
                try db.execute(sql: "UPDATE audit_records SET prev_hash = ?, hash = ? WHERE seq = ?",
                               arguments: [entry.prevHash, entry.hash, entry.seq])
            }
        }
        let report = try verify(dir)
        #expect(report.firstProblem?.kind == .checkpointMismatch)
        #expect(report.firstProblem?.seq == 10)
    }

    @Test func forgedCheckpointSignatureIsDetected() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "UPDATE audit_checkpoints SET hash = ? WHERE seq = 20", arguments: [String(repeating: "1", count: 64)])
        }
        let report = try verify(dir)
        #expect(report.firstProblem?.kind == .badSignature)
        #expect(report.firstProblem?.seq == 20)
    }
}
