import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Merchants added, changed, removed and imported through the admin API, with `AdminService`'s rules.
@Suite("Admin API merchant changes")
struct AdminAPIMerchantWriteTests {
    static let account = "krn:partner:global:account:test:NEW9"

    @Test("add, change and remove a merchant: each role's rights, If-Match missing 428 and stale 412, conflicts 409, the data plane follows")
    func addUpdateRemove() async throws {
        try await withAdminAPI(tls: true) { api in
            let client = api.gw.client()
            let path = "/v2/accounts/m9" + AuditTrailTests.transaction
            // Unknown to the gateway before it is added: refused by the gateway itself.
            #expect(try await client.send("GET", path, headers: [api.gw.bearer("checkout")]).errorCode?.hasPrefix("GATEWAY_") == true)

            let new = #"{"id":"m9","partner_id":"acq","account":"\#(Self.account)","groups":["eu"]}"#
            #expect(try await api.send("POST", "/admin/v1/merchants", as: .viewer, body: new).status == 403)
            let added = try await api.send("POST", "/admin/v1/merchants", as: .operator, body: new)
            #expect(added.status == 201)
            #expect(added.json["groups"] == .array([.string("eu")]))
            let etag = try #require(added.header("ETag"))
            #expect(try await api.gw.admin.showMerchant(id: "m9").etag == etag)
            let records = try await api.auditRecords(added.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.4 == "admin.addMerchant" && $0.5 == "m9" })
            try await api.gw.waitForReload()
            // Known now: the call reaches Klarna (whatever the simulator makes of the transaction, no gateway refusal).
            let reached = try await client.send("GET", path, headers: [api.gw.bearer("checkout")])
            #expect(reached.errorCode?.hasPrefix("GATEWAY_") != true, "\(reached.status) \(reached.errorCode ?? "")")

            let m1Account = try await api.gw.admin.showMerchant(id: "m1").account.rawValue
            let refusals: [(String, Int, String)] = [
                (new, 409, "GATEWAY_CONFLICT"),
                (#"{"id":"m10","partner_id":"acq","account":"\#(m1Account)"}"#, 409, "GATEWAY_CONFLICT"),
                (#"{"id":"m10","partner_id":"nobody","account":"krn:partner:global:account:test:X1"}"#, 404, "GATEWAY_NOT_FOUND"),
                (#"{"id":"m10","partner_id":"acq","account":"krn:partner:global:account:live:X1"}"#, 422, "GATEWAY_ENVIRONMENT_MISMATCH"),
                (#"{"id":"m10","partner_id":"acq","account":"krn:nope"}"#, 400, "GATEWAY_BAD_REQUEST"),
                (#"{"id":"m10","partner_id":"acq","account":"krn:partner:global:account:test:X1","groups":["a b"]}"#, 400, "GATEWAY_BAD_REQUEST"),
                (#"{"id":"m10","partner_id":"acq","account":"krn:partner:global:account:test:X1","api_key":"k"}"#, 400, "GATEWAY_BAD_REQUEST"),
            ]
            for (body, status, code) in refusals {
                let refused = try await api.send("POST", "/admin/v1/merchants", as: .operator, body: body)
                #expect(refused.status == status && refused.errorCode == code, "\(body): \(refused.status)")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.3) == [code], "\(body)")
            }
            #expect(try await api.gw.admin.store.merchant(id: "m10") == nil)

            let change = #"{"groups":["us"],"release":"r5","status":"suspended"}"#
            #expect(try await api.send("PATCH", "/admin/v1/merchants/m9", as: .operator, body: change).status == 428)
            #expect(try await api.send("PATCH", "/admin/v1/merchants/m9", as: .viewer, headers: [("If-Match", etag)], body: change).status == 403)
            #expect(try await api.send("PATCH", "/admin/v1/merchants/m9", as: .operator, headers: [("If-Match", AdminAPITests.staleETag)], body: change).status == 412)
            #expect(try await api.send("PATCH", "/admin/v1/merchants/m9", as: .operator, headers: [("If-Match", etag)], body: "{}").status == 400)
            let changed = try await api.send("PATCH", "/admin/v1/merchants/m9", as: .operator, headers: [("If-Match", etag)], body: change)
            #expect(changed.status == 200)
            let second = try #require(changed.header("ETag"))
            let stored = try await api.gw.admin.showMerchant(id: "m9")
            #expect(stored.groups == ["us"] && stored.release == "r5" && stored.status == .suspended && stored.etag == second)
            // The first ETag is stale now.
            let stale = try await api.send("PATCH", "/admin/v1/merchants/m9", as: .operator, headers: [("If-Match", etag)], body: #"{"groups":[]}"#)
            #expect(stale.status == 412 && stale.header("ETag") == second)
            let conflicts: [(String, Int)] = [
                (#"{"account":"\#(m1Account)"}"#, 409), (#"{"partner_id":"acq_live"}"#, 422), (#"{"partner_id":"ghost"}"#, 404),
                (#"{"release":"r99"}"#, 400), (#"{"status":"gone"}"#, 400),
            ]
            for (body, status) in conflicts {
                let refused = try await api.send("PATCH", "/admin/v1/merchants/m9", as: .operator, headers: [("If-Match", second)], body: body)
                #expect(refused.status == status, "\(body): \(refused.status)")
            }
            #expect(try await api.gw.admin.showMerchant(id: "m9").etag == second, "a refused change changed the merchant")

            #expect(try await api.send("DELETE", "/admin/v1/merchants/m9", as: .operator).status == 428)
            #expect(try await api.send("DELETE", "/admin/v1/merchants/m9", as: .viewer, headers: [("If-Match", second)]).status == 403)
            #expect(try await api.send("DELETE", "/admin/v1/merchants/m9", as: .operator, headers: [("If-Match", etag)]).status == 412)
            let removed = try await api.send("DELETE", "/admin/v1/merchants/m9", as: .security, headers: [("If-Match", second)])
            #expect(removed.status == 200)
            #expect(removed.json["id"]?.stringValue == "m9")
            #expect(try await api.auditRecords(removed.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            #expect(try await api.gw.admin.store.merchant(id: "m9") == nil)
            #expect(try await api.send("GET", "/admin/v1/merchants/m9", as: .viewer).status == 404)
            try await api.gw.waitForReload()
            #expect(try await client.send("GET", path, headers: [api.gw.bearer("checkout")]).errorCode?.hasPrefix("GATEWAY_") == true)
            try await client.close()

            // A merchant's own API key is never in these answers.
            try await api.expectNoSecret(in: [added, changed, removed].map(\.text).joined())
        }
    }

    @Test("a CSV import through the API: all or nothing with every problem by line, counts in the answer, bodies over 64 KiB taken up to 8 MiB")
    func importCSV() async throws {
        try await withAdminAPI { api in
            let csv = "id,partner,account,group\nm1,acq,\(try await api.gw.admin.showMerchant(id: "m1").account.rawValue),vip\nn1,acq,krn:partner:global:account:test:N1\nn2,acq,krn:partner:global:account:test:N2,eu;us\n"
            #expect(try await api.send("POST", "/admin/v1/merchants/import", as: .viewer, body: csv).status == 403)
            let imported = try await api.send("POST", "/admin/v1/merchants/import", as: .operator, headers: [("Content-Type", "text/csv")], body: csv)
            #expect(imported.status == 200)
            #expect(imported.json["added"]?.intValue == 2 && imported.json["updated"]?.intValue == 1)
            #expect(try await api.gw.admin.showMerchant(id: "n2").groups == ["eu", "us"])
            #expect(try await api.gw.admin.showMerchant(id: "m1").groups == ["vip"])
            #expect(try await api.auditRecords(imported.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])

            let bad = "id,partner,account\nn3,acq,krn:partner:global:account:test:N3\nn4,ghost,krn:partner:global:account:test:N4\nn5,acq,nope\n"
            let refused = try await api.send("POST", "/admin/v1/merchants/import", as: .operator, body: bad)
            #expect(refused.status == 400)
            let message = refused.json["error_message"]?.stringValue ?? ""
            #expect(message.contains("line 3") && message.contains("line 4") && !message.contains("line 2"), "\(message)")
            #expect(try await api.gw.admin.store.merchant(id: "n3") == nil, "a refused import wrote something")
            #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "refusal"])
            #expect(try await api.send("POST", "/admin/v1/merchants/import", as: .operator, body: "").status == 400)

            // About 120 KiB: over the 64 KiB other bodies may have, well under the import's 8 MiB.
            let lines = (1...2_000).map { "bulk\($0),acq,krn:partner:global:account:test:BULK\(String(repeating: "0", count: 20))\($0),g1" }
            let large = try await api.send("POST", "/admin/v1/merchants/import", as: .operator, body: "id,partner,account,group\n" + lines.joined(separator: "\n"))
            #expect(large.status == 200)
            #expect(large.json["added"]?.intValue == 2_000)
            let tooLarge = try await api.send("POST", "/admin/v1/merchants/import", as: .operator, body: String(repeating: "x", count: 8 * 1024 * 1024 + 1))
            #expect(tooLarge.status == 413)
            #expect(try await api.send("POST", "/admin/v1/merchants", as: .operator, body: String(repeating: " ", count: 70_000)).status == 413)
        }
    }
}
