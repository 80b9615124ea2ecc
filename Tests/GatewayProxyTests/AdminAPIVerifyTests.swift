import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import GRDB
import Testing

/// `GET /admin/v1/audit/verification`: `audit verify` through the API.
@Suite("Admin API audit verification")
struct AdminAPIVerifyTests {
    @Test("an intact trail verifies; an edited record is found by its sequence number; a viewer may not run it")
    func verification() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            for _ in 0..<3 {
                #expect(try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).status == 200)
            }
            try await client.close()
            await api.gw.audit.flush()

            #expect(try await api.send("GET", "/admin/v1/audit/verification", as: .viewer).status == 403)
            let intact = try await api.send("GET", "/admin/v1/audit/verification", as: .operator)
            #expect(intact.status == 200)
            #expect(intact.json["intact"]?.boolValue == true)
            #expect((intact.json["records_checked"]?.intValue ?? 0) >= 3)
            #expect(intact.json["problems"] == .array([]))

            // An edit made behind the writer's back, as an intruder with the file would make it.
            let queue = try DatabaseQueue(path: api.gw.auditPath)
            try await queue.writeWithoutTransaction { try $0.execute(sql: "UPDATE audit_records SET status = 500 WHERE seq = 2") }
            try queue.close()
            let broken = try await api.send("GET", "/admin/v1/audit/verification", as: .security)
            #expect(broken.status == 200)
            #expect(broken.json["intact"]?.boolValue == false)
            #expect(broken.json["problems"]?.arrayValue?.first?["seq"]?.intValue == 2)
        }
    }
}
