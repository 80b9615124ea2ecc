import Foundation
import GatewayAudit
import GatewayTestSupport
import GRDB
import Testing

/// Issue 4 at the gateway: every call recorded (intent and outcome, or one refusal), the chain verifies, and a
/// full audit store refuses calls with 503 and forwards nothing until writing works again.
@Suite("Audit trail through the gateway")
struct AuditTrailTests {
    static let transaction = "/payment/transactions/krn:payment:eu1:transaction:seed-M1"

    /// (phase, status, gateway error, release) of each record of a request.
    static func records(_ path: String, requestID: String) throws -> [(String, Int?, String?, String?)] {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT phase, status, gateway_error_code, release FROM audit_records WHERE request_id = ? ORDER BY seq", arguments: [requestID])
                .map { ($0[0], $0[1], $0[2], $0[3]) }
        }
    }

    @Test("a forwarded call has an intent and an outcome, a refusal one record; the chain verifies; no secret is stored")
    func recordsAndChain() async throws {
        try await withGateway { gw in
            let client = gw.client()
            let ok = try await client.send("GET", "/v2/accounts/m1" + Self.transaction, headers: [gw.bearer("checkout")])
            let refused = try await client.send("GET", "/v2/accounts/m3" + Self.transaction, headers: [gw.bearer("checkout")])
            try await client.close()
            await gw.audit.flush()
            let okID = try #require(ok.header("Klarna-Gateway-Request-Id"))
            let refusedID = try #require(refused.header("Klarna-Gateway-Request-Id"))
            let okRecords = try Self.records(gw.auditPath, requestID: okID)
            #expect(okRecords.map(\.0) == ["intent", "outcome"])
            #expect(okRecords.last?.1 == 200)
            #expect(okRecords.last?.3 == "r9")
            let refusal = try Self.records(gw.auditPath, requestID: refusedID)
            #expect(refusal.map(\.0) == ["refusal"])
            #expect(refusal.first?.2 == "GATEWAY_FORBIDDEN")
            let report = try AuditVerifier.verify(path: gw.auditPath)
            #expect(report.isIntact)
            var stored = ""
            for suffix in ["", "-wal"] {
                stored += String(decoding: FileManager.default.contents(atPath: gw.auditPath + suffix) ?? Data(), as: UTF8.self)
            }
            for secret in gw.plantedSecrets { #expect(!stored.contains(secret), "a planted secret is in the audit store") }
        }
    }

    @Test("a full audit disk refuses calls with 503 and forwards nothing, then recovers by itself")
    func failClosed() async throws {
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-full-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        let mounted = try await ChildProcess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mount.path], directory: FileManager.default.temporaryDirectory)
        try #require(mounted.status == 0, "mounting a small tmpfs failed: \(mounted.stderr)")
        defer { _ = try? Process.run(URL(fileURLWithPath: "/bin/umount"), arguments: ["-l", mount.path]) }
        try await withGateway(auditPath: mount.appendingPathComponent("audit.sqlite").path) { gw in
            let client = gw.client()
            #expect(try await client.send("GET", "/v2/accounts/m1" + Self.transaction, headers: [gw.bearer("checkout")]).status == 200)
            // Fill the file system.
            let filler = mount.appendingPathComponent("filler")
            _ = try await ChildProcess.run("/bin/dd", ["if=/dev/zero", "of=\(filler.path)", "bs=4k"], directory: mount)
            try await gw.clearReceived()
            var refusedWith503 = false
            var forwardedWhileFull = 0
            for _ in 0..<300 where !refusedWith503 {
                let response = try await client.send("GET", "/v2/accounts/m1" + Self.transaction, headers: [gw.bearer("checkout")])
                if response.status == 503 {
                    #expect(response.errorCode == "GATEWAY_AUDIT_UNAVAILABLE")
                    refusedWith503 = true
                } else {
                    forwardedWhileFull += 1
                }
            }
            #expect(refusedWith503, "the gateway kept forwarding with a full audit disk")
            // The admin listener says why.
            let admin = TestHTTPClient(port: gw.adminServer.port, tls: nil)
            let unready = try await admin.send("GET", "/readyz")
            #expect(unready.status == 503)
            #expect(unready.text.contains("\"healthy\":false"))
            #expect(try await admin.send("GET", "/healthz").status == 200)
            // Everything Klarna received was answered with 200 and recorded; the refused call reached nobody.
            #expect(try await gw.received().count == forwardedWhileFull)
            try FileManager.default.removeItem(at: filler)
            var recovered = false
            for _ in 0..<50 where !recovered {
                recovered = try await client.send("GET", "/v2/accounts/m1" + Self.transaction, headers: [gw.bearer("checkout")]).status == 200
                if !recovered { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(recovered, "the gateway did not resume after the disk had room again")
            #expect(try await admin.send("GET", "/readyz").status == 200)
            try await admin.close()
            try await client.close()
        }
    }
}
