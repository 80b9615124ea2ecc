import Foundation
import GatewayCore
import GatewayTestSupport
import Testing

/// The access and rate-limit policies through the admin API: read as the running gateway holds them, and a proposed
/// file checked as a reload checks it, with nothing applied by the check; on a real admin listener over a real store.
@Suite("Admin API: policies")
struct AdminAPIPolicyTests {
    /// `{"yaml": text}` as a request body.
    static func proposal(_ yaml: String) -> String { JSONValue.object([("yaml", .string(yaml))]).text }

    @Test("the access policy in force is read by a viewer; a proposal is checked against the catalogue and store, refused with every problem, and never applied")
    func access() async throws {
        try await withAdminAPI { api in
            let current = try await api.send("GET", "/admin/v1/policies/access", as: .viewer)
            #expect(current.status == 200)
            #expect(current.json["kind"]?.stringValue == "access")
            let checkout = current.json["policy"]?["callers"]?["checkout"]
            #expect(checkout?["merchants"]?.arrayValue?.compactMap(\.stringValue) == ["m1", "group:eu"])
            #expect(checkout?["partners"]?.arrayValue?.compactMap(\.stringValue) == ["acq"])
            let version = try #require(current.json["version"]?.stringValue)
            #expect(current.header("ETag") == version)

            // The file in force, proposed again: valid, the same version, nothing changed.
            let same = try await api.send("POST", "/admin/v1/policies/access/validate", as: .operator, body: Self.proposal(GatewayHarness.defaultAccess))
            #expect(same.status == 200)
            #expect(same.json["valid"]?.boolValue == true && same.json["changed"]?.boolValue == false)
            #expect(same.json["version"]?.stringValue == version && same.json["current_version"]?.stringValue == version)
            #expect(same.json["warnings"]?.arrayValue?.isEmpty == true)

            // A new grant for a caller the store does not know: valid, changed, with a warning naming it.
            let widened = GatewayHarness.defaultAccess + "\n  ghost:\n    merchants: [m3]\n    families: [payment-transaction]\n"
            let proposed = try await api.send("POST", "/admin/v1/policies/access/validate", as: .security, body: Self.proposal(widened))
            #expect(proposed.status == 200)
            #expect(proposed.json["changed"]?.boolValue == true && proposed.json["version"]?.stringValue != version)
            #expect(proposed.json["policy"]?["callers"]?["ghost"]?["merchants"]?.arrayValue?.compactMap(\.stringValue) == ["m3"])
            #expect(proposed.json["warnings"]?.arrayValue?.compactMap(\.stringValue) == ["callers.ghost: no caller with this id in the store"])

            // Problems: each named, in the gateway's error shape with the request id, and recorded as a refusal.
            let broken = "callers:\n  checkout:\n    merchants: [m1]\n    families: [no-such-family]\n    permissions: [fly]\n"
            let refused = try await api.send("POST", "/admin/v1/policies/access/validate", as: .operator, body: Self.proposal(broken))
            #expect(refused.errorCode == "GATEWAY_BAD_REQUEST")
            let message = refused.json["error_message"]?.stringValue ?? ""
            #expect(message.contains("unknown family 'no-such-family'") && message.contains("fly"), "\(message)")
            let refusalID = try #require(refused.header("Klarna-Gateway-Request-Id"))
            #expect(refused.json["error_id"]?.stringValue == refusalID)
            let records = try await api.auditRecords(refusalID)
            #expect(records.map(\.0) == ["refusal"] && records.first?.3 == "GATEWAY_BAD_REQUEST" && records.first?.4 == "admin.validateAccessPolicy")
            for body in [Self.proposal("callers: [1, 2"), Self.proposal("callers:\n  checkout:\n    merchants: 7\n"), "{}", #"{"yaml":"x","apply":true}"#, "not json"] {
                #expect(try await api.send("POST", "/admin/v1/policies/access/validate", as: .operator, body: body).errorCode == "GATEWAY_BAD_REQUEST", "\(body)")
            }

            // Roles: a viewer reads but may not validate; no token is 401.
            #expect(try await api.send("POST", "/admin/v1/policies/access/validate", as: .viewer, body: Self.proposal(widened)).errorCode == "GATEWAY_FORBIDDEN")
            #expect(try await api.send("GET", "/admin/v1/policies/access", as: nil).errorCode == "GATEWAY_UNAUTHENTICATED")
            // Applying is another request, under If-Match (AdminAPIPolicyApplyTests).
            #expect(try await api.send("PUT", "/admin/v1/policies/access", as: .security, body: Self.proposal(widened)).status == 428)

            // Nothing was applied: the policy in force and the running snapshot's grants are as before.
            #expect(try await api.send("GET", "/admin/v1/policies/access", as: .viewer).json["version"]?.stringValue == version)
            #expect(api.gw.service.runtime.snapshots.current.access.callers["ghost"] == nil)
            try await api.expectNoSecret(in: try await api.readAsEveryRole(["/admin/v1/policies/access", "/admin/v1/policies/rate-limits"]))
        }
    }

    @Test("the rate-limit policy in force (the file's, or Klarna's figures without one); a proposal's problems refused, its overrides of unknown ids warned about")
    func rateLimits() async throws {
        try await withAdminAPI(rateLimits: AdminAPIRateLimitTests.limits) { api in
            let current = try await api.send("GET", "/admin/v1/policies/rate-limits", as: .viewer)
            #expect(current.status == 200)
            #expect(current.json["policy"]?["caller"]?["burst"]?.intValue == 5)
            #expect(current.json["policy"]?["merchant"]?["test"]?["default"]?["burst"]?.intValue == 3)
            let version = try #require(current.json["version"]?.stringValue)

            let same = try await api.send("POST", "/admin/v1/policies/rate-limits/validate", as: .operator, body: Self.proposal(AdminAPIRateLimitTests.limits))
            #expect(same.json["changed"]?.boolValue == false && same.json["version"]?.stringValue == version)
            let overrides = AdminAPIRateLimitTests.limits + "\ncaller_overrides:\n  ghost: {rate: 2, burst: 2}\n  checkout: {rate: 1, burst: 1}\n"
            let warned = try await api.send("POST", "/admin/v1/policies/rate-limits/validate", as: .operator, body: Self.proposal(overrides))
            #expect(warned.status == 200 && warned.json["changed"]?.boolValue == true)
            #expect(warned.json["warnings"]?.arrayValue?.count == 1)
            #expect(warned.json["warnings"]?.arrayValue?.first?.stringValue?.contains("ghost") == true)

            let broken = "merchant:\n  test:\n    default: {rate: -1, burst: 3}\n    categories: {no-such-category: {rate: 1}}\n"
            let refused = try await api.send("POST", "/admin/v1/policies/rate-limits/validate", as: .operator, body: Self.proposal(broken))
            #expect(refused.errorCode == "GATEWAY_BAD_REQUEST")
            let message = refused.json["error_message"]?.stringValue ?? ""
            #expect(message.contains("no-such-category") && message.contains("rate"), "\(message)")
            #expect(api.gw.service.runtime.snapshots.current.rateLimits.callerOverrides.isEmpty, "nothing was applied")
        }
        try await withAdminAPI { api in
            let defaults = try await api.send("GET", "/admin/v1/policies/rate-limits", as: .viewer)
            // Without rate-limits.yaml: Klarna's published test figures (50/s, 5/s for payment-request-management).
            #expect(defaults.json["policy"]?["merchant"]?["test"]?["default"]?["rate"]?.intValue == 50)
        }
    }
}
