import Foundation
import GatewayTestSupport
import Testing

/// `GET /admin/v1/audit/tail`: following the audit trail through the API, on a real admin listener over a real store
/// and SQLite audit trail, with calls through the real data plane.
@Suite("Admin API: audit tail")
struct AdminAPIAuditTailTests {
    @Test("the newest records, then from the cursor only what came after, in audit/records' shape; the cursor comes back when nothing did; filters; refusals")
    func tail() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            let first = try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
            #expect(first.status == 200)
            await api.gw.audit.flush()

            // Without a cursor: the newest records, oldest of them first, as the whole trail ends.
            let start = try await api.send("GET", "/admin/v1/audit/tail?limit=2", as: .viewer)
            #expect(start.status == 200)
            let all = try await api.send("GET", "/admin/v1/audit/records?limit=500", as: .viewer).json["records"]?.arrayValue ?? []
            #expect(start.json["records"]?.arrayValue == Array(all.suffix(2)))
            #expect(AdminAPIOperationsTests.requestIDs(start) == [first.header("Klarna-Gateway-Request-Id"), first.header("Klarna-Gateway-Request-Id")])
            #expect(start.json["more"]?.boolValue == false)
            let cursor = try #require(start.json["next_cursor"]?.stringValue)

            // Nothing new: no records, and the same cursor to call again with.
            let idle = try await api.send("GET", "/admin/v1/audit/tail?after=\(cursor)", as: .viewer)
            #expect(idle.json["records"]?.arrayValue?.isEmpty == true)
            #expect(idle.json["next_cursor"]?.stringValue == cursor)

            // A refused call and an admin change since: exactly their records, as audit/records answers them.
            let refused = try await client.send("GET", "/v2/accounts/nobody" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
            let refusedID = try #require(refused.header("Klarna-Gateway-Request-Id"))
            let suspended = try await api.send("POST", "/admin/v1/merchants/m2/suspend", as: .operator, headers: [("If-Match", try await api.etag("m2"))])
            let changeID = try #require(suspended.header("Klarna-Gateway-Request-Id"))
            try await client.close()
            await api.gw.audit.flush()
            let new = try await api.send("GET", "/admin/v1/audit/tail?after=\(cursor)", as: .security)
            #expect(AdminAPIOperationsTests.requestIDs(new) == [refusedID, changeID, changeID])
            let byRecords = try await api.send("GET", "/admin/v1/audit/records?after=\(cursor)", as: .viewer)
            #expect(new.json["records"] == byRecords.json["records"])
            let next = try #require(new.json["next_cursor"]?.stringValue)
            #expect(next != cursor)
            #expect(try await api.send("GET", "/admin/v1/audit/tail?after=\(next)", as: .viewer).json["records"]?.arrayValue?.isEmpty == true)

            // A page at a time: `more` says to call again at once; the filters of audit/records apply.
            let one = try await api.send("GET", "/admin/v1/audit/tail?after=\(cursor)&limit=1", as: .viewer)
            #expect(AdminAPIOperationsTests.requestIDs(one) == [refusedID] && one.json["more"]?.boolValue == true)
            let onlyAdmin = try await api.send("GET", "/admin/v1/audit/tail?caller=admin%3Aoperator-admin&after=\(cursor)", as: .viewer)
            #expect(AdminAPIOperationsTests.requestIDs(onlyAdmin) == [changeID, changeID])
            let latestAdmin = try await api.send("GET", "/admin/v1/audit/tail?caller=admin%3Aoperator-admin&limit=1", as: .viewer)
            #expect(latestAdmin.json["records"]?.arrayValue?.first?["phase"]?.stringValue == "outcome")
            #expect(try await api.send("GET", "/admin/v1/audit/tail?caller=nobody", as: .viewer).json["next_cursor"] == .null)

            for bad in ["after=nope", "limit=0", "from=yesterday", "merchant=" + String(repeating: "x", count: 201)] {
                let answer = try await api.send("GET", "/admin/v1/audit/tail?\(bad)", as: .viewer)
                #expect(answer.errorCode == "GATEWAY_BAD_REQUEST", "\(bad)")
                #expect(answer.json["error_id"]?.stringValue == answer.header("Klarna-Gateway-Request-Id") && answer.json["error_id"] != nil)
            }
            #expect(try await api.send("GET", "/admin/v1/audit/tail", as: nil).errorCode == "GATEWAY_UNAUTHENTICATED")
            #expect(try await api.send("POST", "/admin/v1/audit/tail", as: .security).status == 405)
            try await api.expectNoSecret(in: try await api.readAsEveryRole(["/admin/v1/audit/tail?limit=500"]))
        }
    }
}
