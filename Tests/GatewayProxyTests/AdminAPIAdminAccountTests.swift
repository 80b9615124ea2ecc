import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Admin accounts listed, added and removed through the admin API by a security account.
@Suite("Admin API admin accounts")
struct AdminAPIAdminAccountTests {
    @Test("security lists, adds (token once, which works) and removes admins (its token stops); viewer and operator 403; no account removes itself; the token never again")
    func addListRemove() async throws {
        try await withAdminAPI(tls: true) { api in
            #expect(try await api.send("GET", "/admin/v1/admins", as: .viewer).status == 403)
            #expect(try await api.send("GET", "/admin/v1/admins", as: .operator).status == 403)
            let listed = try await api.send("GET", "/admin/v1/admins", as: .security)
            #expect(listed.status == 200)
            #expect(listed.json["admins"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.sorted() == ["operator-admin", "security-admin", "viewer-admin"])

            let new = #"{"name":"night-ops","role":"operator"}"#
            let refused = try await api.send("POST", "/admin/v1/admins", as: .operator, body: new)
            #expect(refused.status == 403)
            #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.3) == ["GATEWAY_FORBIDDEN"])
            let added = try await api.send("POST", "/admin/v1/admins", as: .security, body: new)
            #expect(added.status == 201)
            #expect(added.json["admin"]?["role"]?.stringValue == "operator")
            let token = try #require(added.json["token"]?.stringValue)
            #expect(try await api.auditRecords(added.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            let whoami = try await api.client.send("GET", "/admin/v1/account", headers: [("Authorization", "Bearer \(token)")])
            #expect(whoami.json["name"]?.stringValue == "night-ops" && whoami.json["role"]?.stringValue == "operator")
            #expect(try await api.send("POST", "/admin/v1/admins", as: .security, body: new).status == 409)
            for bad in [#"{"name":"x","role":"root"}"#, #"{"name":".","role":"viewer"}"#, #"{"name":"x"}"#, #"{"name":"x","role":"viewer","token":"t"}"#] {
                #expect(try await api.send("POST", "/admin/v1/admins", as: .security, body: bad).status == 400, "\(bad)")
            }

            #expect(try await api.send("DELETE", "/admin/v1/admins/security-admin", as: .security).status == 409)
            #expect(try await api.send("DELETE", "/admin/v1/admins/night-ops", as: .operator).status == 403)
            #expect(try await api.send("DELETE", "/admin/v1/admins/ghost", as: .security).status == 404)
            let removed = try await api.send("DELETE", "/admin/v1/admins/night-ops", as: .security)
            #expect(removed.status == 200 && removed.json["name"]?.stringValue == "night-ops")
            #expect(try await api.auditRecords(removed.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            #expect(try await api.client.send("GET", "/admin/v1/account", headers: [("Authorization", "Bearer \(token)")]).status == 401)

            // The token, its secret half and its hash: in no later answer, the log or the audit store.
            var later = try await api.readAsEveryRole(["/admin/v1/account", "/admin/v1/audit/records?limit=500"])
            later += try await api.send("GET", "/admin/v1/admins", as: .security).text + removed.text
            await api.gw.audit.flush()
            later += api.gw.logs.text
            for suffix in ["", "-wal"] {
                later += String(decoding: FileManager.default.contents(atPath: api.gw.auditPath + suffix) ?? Data(), as: UTF8.self)
            }
            #expect(later.contains("admin.addAdmin"), "the search below would find nothing anywhere")
            let secretHalf = String(token.suffix(43))
            let leaked = later.contains(secretHalf) || later.contains(CallerToken.hash(secretHalf))
            #expect(!leaked, "the new admin token or its hash appears after the answer that created it")
            try await api.expectNoSecret(in: later)
        }
    }
}
