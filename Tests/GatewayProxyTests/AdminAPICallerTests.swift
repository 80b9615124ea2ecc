import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Callers added and their tokens rotated through the admin API: the token is shown once and works on the data
/// plane, the rotated one stops, and neither is ever seen again.
@Suite("Admin API callers")
struct AdminAPICallerTests {
    /// The harness's grants plus one for a caller the tests add through the API.
    static let access = GatewayHarness.defaultAccess + """

          newcomer:
            merchants: [m1]
            families: [payment-transaction]
        """

    @Test("a caller added through the API gets a token once that the data plane accepts; a rotation replaces it; neither appears again")
    func addAndRotate() async throws {
        try await withAdminAPI(access: Self.access, tls: true) { api in
            let path = "/v2/accounts/m1" + AuditTrailTests.transaction
            let viewer = try await api.send("POST", "/admin/v1/callers", as: .viewer, body: #"{"id":"newcomer"}"#)
            #expect(viewer.status == 403)
            #expect(try await api.auditRecords(viewer.header("Klarna-Gateway-Request-Id")).map(\.3) == ["GATEWAY_FORBIDDEN"])
            #expect(try await api.gw.admin.store.caller(id: "newcomer") == nil)

            let added = try await api.send("POST", "/admin/v1/callers", as: .operator, body: #"{"id":"newcomer"}"#)
            #expect(added.status == 201)
            let first = try #require(added.json["token"]?.stringValue)
            #expect(CallerToken(parsing: first[...]) != nil)
            #expect(added.json["caller"]?["id"]?.stringValue == "newcomer")
            #expect(added.json["caller"]?["token"]?.boolValue == true)
            let stored = try #require(try await api.gw.admin.store.caller(id: "newcomer"))
            #expect(stored.tokenHash == CallerToken(parsing: first[...])?.secretHash, "the store keeps the hash")
            let records = try await api.auditRecords(added.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.4 == "admin.addCaller" && $0.1 == "admin:operator-admin" })
            #expect(records.last?.2 == 201)

            try await api.gw.waitForReload()
            let client = api.gw.client()
            #expect(try await client.send("GET", path, headers: [("Authorization", "Bearer \(first)")]).status == 200)

            let again = try await api.send("POST", "/admin/v1/callers", as: .security, body: #"{"id":"newcomer"}"#)
            #expect(again.status == 409)
            #expect(again.errorCode == "GATEWAY_CONFLICT")

            #expect(try await api.send("POST", "/admin/v1/callers/newcomer/rotate-token", as: .viewer).status == 403)
            #expect(try await api.send("POST", "/admin/v1/callers/ghost/rotate-token", as: .operator).status == 404)
            let rotated = try await api.send("POST", "/admin/v1/callers/newcomer/rotate-token", as: .operator)
            #expect(rotated.status == 200)
            let second = try #require(rotated.json["token"]?.stringValue)
            #expect(second != first)
            #expect(try await api.auditRecords(rotated.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            try await api.gw.waitForReload()
            #expect(try await client.send("GET", path, headers: [("Authorization", "Bearer \(first)")]).errorCode == "GATEWAY_UNAUTHENTICATED")
            #expect(try await client.send("GET", path, headers: [("Authorization", "Bearer \(second)")]).status == 200)
            try await client.close()

            // Never again: not in any later answer, the log or the audit trail (its store file and write-ahead log).
            var later = try await api.readAsEveryRole(["/admin/v1/callers", "/admin/v1/audit/records?caller=admin:operator-admin&limit=500"])
            later += try await api.send("POST", "/admin/v1/callers/newcomer/revoke", as: .operator).text
            await api.gw.audit.flush()
            later += api.gw.logs.text
            for suffix in ["", "-wal"] {
                later += String(decoding: FileManager.default.contents(atPath: api.gw.auditPath + suffix) ?? Data(), as: UTF8.self)
            }
            #expect(later.contains("newcomer"), "the search below would find nothing anywhere")
            for token in [first, second] {
                let leaked = later.contains(String(token.suffix(43))) || later.contains(CallerToken(parsing: token[...])?.secretHash ?? "-")
                #expect(!leaked, "a caller token or its hash appears after the answer that created it")
            }
            try await api.expectNoSecret(in: later)
        }
    }

    @Test("an added caller's body is checked: fields, id rules, fingerprint shape; a certificate fingerprint is stored normalized")
    func validation() async throws {
        try await withAdminAPI { api in
            let bad = [
                "", "[]", "{}", #"{"id":7}"#, #"{"id":"."}"#, #"{"id":"a b"}"#, #"{"id":"ok","extra":1}"#, #"{"id":"ok","certificate_fingerprint":"abc"}"#,
                #"{"id":"ok","id":"again"}"#, #"{"id":"\#(String(repeating: "x", count: 65))"}"#,
            ]
            for body in bad {
                let refused = try await api.send("POST", "/admin/v1/callers", as: .operator, body: body)
                #expect(refused.status == 400, "\(body)")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.3) == ["GATEWAY_BAD_REQUEST"], "\(body)")
            }
            #expect(try await api.gw.admin.store.caller(id: "ok") == nil)
            let fingerprint = (0..<32).map { String(format: "%02X", $0 * 7 % 256) }.joined(separator: ":")
            let added = try await api.send("POST", "/admin/v1/callers", as: .operator, body: #"{"id":"pinned","certificate_fingerprint":"\#(fingerprint)"}"#)
            #expect(added.status == 201)
            #expect(added.json["caller"]?["certificate_fingerprint"]?.stringValue == fingerprint.replacingOccurrences(of: ":", with: "").lowercased())
        }
    }
}
