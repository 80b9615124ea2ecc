import Foundation
import GatewayCore
import GatewayTestSupport
import Testing

/// Applying access and rate-limit policies through the admin API: each role's rights, `If-Match`, every problem
/// named, the new version stored and in force at once (calls through the gateway refused or limited by it), the
/// history and a rollback; on a real admin listener over a real SQLite store.
@Suite("Admin API: applying policies")
struct AdminAPIPolicyApplyTests {
    /// `{"yaml": text}` as a request body, with a comment when given.
    static func proposal(_ yaml: String, comment: String? = nil) -> String {
        JSONValue.object([("yaml", .string(yaml))] + (comment.map { [("comment", JSONValue.string($0))] } ?? [])).text
    }

    /// The default grants without the `checkout` caller's: every call it makes is refused.
    static let withoutCheckout = GatewayHarness.defaultAccess.replacingOccurrences(
        of: "  checkout:\n    merchants: [m1, \"group:eu\"]\n    partners: [acq]\n    families: [payment-request, payment-transaction, webhooks]\n", with: "")

    /// A call by `checkout` for merchant m1 through the gateway's TLS listener.
    static func call(_ gw: GatewayHarness) async throws -> TestHTTPResponse {
        let client = gw.client()
        let response = try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [gw.bearer("checkout")])
        try await client.close()
        return response
    }

    @Test("an access policy is applied by security only, under If-Match, validated, stored, in force at once, audited; history pages and a rollback restores")
    func access() async throws {
        #expect(Self.withoutCheckout != GatewayHarness.defaultAccess, "the grant to remove is in the default policy")
        try await withAdminAPI { api in
            let path = "/admin/v1/policies/access"
            #expect(try await Self.call(api.gw).status == 200)
            #expect(api.gw.logs.text.contains("access_policy=file "), "the start says the file is in force")
            let file = try await api.send("GET", path, as: .viewer)
            #expect(file.json["source"]?.stringValue == "file" && file.json["applied_by"] == .null)
            let fileVersion = try #require(file.header("ETag"))
            let body = Self.proposal(Self.withoutCheckout, comment: "checkout retired")

            // Rights: no token or a wrong one 401, a viewer or an operator 403 (access grants callers' rights).
            #expect(try await api.send("PUT", path, as: nil, headers: [("If-Match", fileVersion)], body: body).errorCode == "GATEWAY_UNAUTHENTICATED")
            let wrong = "kgw_" + String(repeating: "0", count: 16) + "_" + String(repeating: "A", count: 43)
            #expect(
                try await api.send("PUT", path, as: nil, headers: [("Authorization", "Bearer \(wrong)"), ("If-Match", fileVersion)], body: body).status == 401)
            for role in [AdminRole.viewer, .operator] {
                #expect(try await api.send("PUT", path, as: role, headers: [("If-Match", fileVersion)], body: body).errorCode == "GATEWAY_FORBIDDEN")
            }
            // If-Match: missing 428, stale 412 with the current ETag.
            #expect(try await api.send("PUT", path, as: .security, body: body).status == 428)
            let stale = try await api.send("PUT", path, as: .security, headers: [("If-Match", EntityTag.hashing("another"))], body: body)
            #expect(stale.status == 412 && stale.header("ETag") == fileVersion)
            // Every problem named; nothing stored.
            let broken = "callers:\n  checkout:\n    merchants: [m1]\n    families: [no-such-family]\n    permissions: [fly]\n"
            let refused = try await api.send("PUT", path, as: .security, headers: [("If-Match", fileVersion)], body: Self.proposal(broken))
            let message = refused.json["error_message"]?.stringValue ?? ""
            #expect(refused.status == 400 && message.contains("unknown family 'no-such-family'") && message.contains("fly"), "\(message)")
            #expect(try await api.send("GET", path + "/history", as: .viewer).json["versions"]?.arrayValue?.isEmpty == true)
            #expect(try await Self.call(api.gw).status == 200)

            // Applied: the answer is the new version, stored, and the next call is refused by it.
            let applied = try await api.send("PUT", path, as: .security, headers: [("If-Match", fileVersion)], body: body)
            #expect(applied.status == 200)
            let restricted = try #require(applied.header("ETag"))
            #expect(restricted != fileVersion && applied.json["version"]?.stringValue == restricted)
            #expect(applied.json["source"]?.stringValue == "store" && applied.json["applied_by"]?.stringValue == "admin:security-admin")
            #expect(applied.json["policy"]?["callers"]?["checkout"] == nil)
            try await api.gw.waitForReload()
            #expect(api.gw.service.runtime.snapshots.current.access.callers["checkout"] == nil)
            #expect(try await Self.call(api.gw).errorCode == "GATEWAY_FORBIDDEN")
            #expect(api.gw.logs.text.contains("configuration reloaded") && api.gw.logs.text.contains("access_policy=store version \(restricted)"))
            let read = try await api.send("GET", path, as: .viewer)
            #expect(read.header("ETag") == restricted && read.json["source"]?.stringValue == "store")
            let appliedID = try #require(applied.header("Klarna-Gateway-Request-Id"))
            let records = try await api.auditRecords(appliedID)
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.1 == "admin:security-admin" && $0.4 == "admin.applyAccessPolicy" })
            // The version read before is stale now.
            #expect(try await api.send("PUT", path, as: .security, headers: [("If-Match", fileVersion)], body: body).status == 412)

            // A second version grants checkout again; the rollback to the first refuses it again.
            let widened = GatewayHarness.defaultAccess + "\n  ghost:\n    merchants: [m3]\n    families: [payment-transaction]\n"
            let second = try await api.send("PUT", path, as: .security, headers: [("If-Match", restricted)], body: Self.proposal(widened))
            let secondVersion = try #require(second.header("ETag"))
            #expect(second.status == 200 && second.json["warnings"]?.arrayValue?.count == 1)
            try await api.gw.waitForReload()
            #expect(try await Self.call(api.gw).status == 200)
            let rollback = path + "/rollback"
            let back = JSONValue.object([("version", .string(restricted))]).text
            #expect(try await api.send("POST", rollback, as: .operator, headers: [("If-Match", secondVersion)], body: back).errorCode == "GATEWAY_FORBIDDEN")
            #expect(try await api.send("POST", rollback, as: .security, body: back).status == 428)
            #expect(try await api.send("POST", rollback, as: .security, headers: [("If-Match", restricted)], body: back).status == 412)
            let unknown = JSONValue.object([("version", .string(EntityTag.hashing("never stored")))]).text
            #expect(try await api.send("POST", rollback, as: .security, headers: [("If-Match", secondVersion)], body: unknown).status == 404)
            #expect(try await api.send("POST", rollback, as: .security, headers: [("If-Match", secondVersion)], body: #"{"version":"nope"}"#).status == 400)
            let rolledBack = try await api.send("POST", rollback, as: .security, headers: [("If-Match", secondVersion)], body: back)
            #expect(rolledBack.status == 200 && rolledBack.header("ETag") == restricted)
            try await api.gw.waitForReload()
            #expect(try await Self.call(api.gw).errorCode == "GATEWAY_FORBIDDEN")

            // The history, newest first, every version kept, paged.
            let history = try await api.send("GET", path + "/history", as: .viewer)
            let versions = history.json["versions"]?.arrayValue ?? []
            #expect(versions.compactMap { $0["version"]?.stringValue } == [restricted, secondVersion, restricted])
            #expect(versions.first?["comment"]?.stringValue == "rollback to version \(restricted)")
            #expect(versions.last?["comment"]?.stringValue == "checkout retired" && versions.last?["yaml"]?.stringValue == Self.withoutCheckout)
            #expect(versions.allSatisfy { $0["applied_by"]?.stringValue == "admin:security-admin" && $0["source"]?.stringValue == "store" })
            let page = try await api.send("GET", path + "/history?limit=2", as: .viewer)
            let cursor = try #require(page.json["next_cursor"]?.stringValue)
            #expect(page.json["versions"]?.arrayValue?.count == 2)
            let rest = try await api.send("GET", path + "/history?limit=2&before=\(cursor)", as: .viewer)
            #expect(rest.json["versions"]?.arrayValue?.compactMap { $0["version"]?.stringValue } == [restricted] && rest.json["next_cursor"] == .null)
            #expect(try await api.send("GET", path + "/history?limit=0", as: .viewer).status == 400)

            // Back to the file: security only, under If-Match; the file's grants are in force again, every version kept.
            #expect(try await api.send("DELETE", path, as: .operator, headers: [("If-Match", restricted)]).errorCode == "GATEWAY_FORBIDDEN")
            #expect(try await api.send("DELETE", path, as: .security).status == 428)
            let returned = try await api.send("DELETE", path, as: .security, headers: [("If-Match", restricted)])
            #expect(returned.status == 200 && returned.json["returned"]?["source"]?.stringValue == "file")
            try await api.gw.waitForReload()
            #expect(try await Self.call(api.gw).status == 200)
            let again = try await api.send("GET", path, as: .viewer)
            #expect(again.json["source"]?.stringValue == "file" && again.header("ETag") == fileVersion)
            #expect(try await api.send("DELETE", path, as: .security, headers: [("If-Match", fileVersion)]).errorCode == "GATEWAY_CONFLICT")
            let all = try await api.send("GET", path + "/history", as: .viewer).json["versions"]?.arrayValue ?? []
            #expect(all.count == 4 && all.first?["version"] == .null && all.first?["yaml"] == .null && all.first?["source"]?.stringValue == "file")
            try await api.expectNoSecret(in: try await api.readAsEveryRole([path, path + "/history", "/admin/v1/policies/rate-limits/history"]) + applied.text + rolledBack.text)
        }
    }

    @Test("a rate-limit policy is applied by an operator; the limit it sets applies to the next calls, and the history shows it")
    func rateLimits() async throws {
        try await withAdminAPI { api in
            let path = "/admin/v1/policies/rate-limits"
            for _ in 0..<3 { #expect(try await Self.call(api.gw).status == 200) }
            let current = try #require(try await api.send("GET", path, as: .viewer).header("ETag"))
            let tight = "merchant:\n  test:\n    default: {rate: 50, burst: 50}\ncaller: {rate: 0.01, burst: 1}\n"
            #expect(try await api.send("PUT", path, as: .viewer, headers: [("If-Match", current)], body: Self.proposal(tight)).status == 403)
            let applied = try await api.send("PUT", path, as: .operator, headers: [("If-Match", current)], body: Self.proposal(tight))
            #expect(applied.status == 200 && applied.json["applied_by"]?.stringValue == "admin:operator-admin")
            try await api.gw.waitForReload()
            var statuses: [Int] = []
            for _ in 0..<3 { statuses.append(try await Self.call(api.gw).status) }
            #expect(statuses.contains(429), "the caller's burst of 1 applies: \(statuses)")
            let history = try await api.send("GET", path + "/history", as: .viewer)
            #expect(history.json["versions"]?.arrayValue?.compactMap { $0["version"]?.stringValue } == [try #require(applied.header("ETag"))])
            // The access policy is untouched: still the file's.
            #expect(try await api.send("GET", "/admin/v1/policies/access", as: .viewer).json["source"]?.stringValue == "file")
        }
    }
}
