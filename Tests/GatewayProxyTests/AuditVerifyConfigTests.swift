import Foundation
import GatewayTestSupport
import GRDB
import Testing

/// `klarna-gateway audit verify --config` (the built binary) takes the store and the checkpoint file from the
/// configuration, so a tail cut off together with the store's own checkpoints is still caught.
@Suite("audit verify with the configuration")
struct AuditVerifyConfigTests {
    @Test("verify --config uses the configured checkpoint file by itself and catches a truncated tail")
    func verifyUsesTheConfiguredCheckpointFile() async throws {
        try await withGateway { gw in
            let client = gw.client()
            // 30 calls, 60 records: the harness signs a checkpoint every 50 records.
            for _ in 0..<30 {
                _ = try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [gw.bearer("checkout")])
            }
            try await client.close()
            await gw.audit.flush()
            let binary = ChildProcess.productPath("klarna-gateway")
            let intact = try await ChildProcess.run(binary, ["audit", "verify", "--config", gw.configPath], directory: gw.directory)
            #expect(intact.status == 0, "\(intact.stdout)\(intact.stderr)")
            #expect(intact.stdout.contains("using the local checkpoint file"), "\(intact.stdout)")

            // An intruder removes the newest records and every stored checkpoint: only the shipped file knows.
            let queue = try DatabaseQueue(path: gw.auditPath)
            try await queue.write { db in
                try db.execute(sql: "DELETE FROM audit_records WHERE seq > 40")
                try db.execute(sql: "DELETE FROM audit_checkpoints")
            }
            try queue.close()
            let cut = try await ChildProcess.run(binary, ["audit", "verify", "--config", gw.configPath], directory: gw.directory)
            #expect(cut.status == 1, "\(cut.stdout)\(cut.stderr)")
            #expect(cut.stdout.contains("FIRST BAD SEQUENCE NUMBER: 41 (truncated)"), "\(cut.stdout)")
        }
    }
}
