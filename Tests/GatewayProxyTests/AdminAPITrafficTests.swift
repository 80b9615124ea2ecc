import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// `GET /admin/v1/audit/traffic`: the last minutes of calls, counted from the audit trail.
@Suite("Admin API traffic")
struct AdminAPITrafficTests {
    static func isNumber(_ value: JSONValue?) -> Bool {
        switch value {
        case .double, .int: true
        default: false
        }
    }

    @Test("calls, errors by code, statuses, upstream latency and hosts of the last minutes; admin requests are not counted; a bad window is 400")
    func traffic() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            for _ in 0..<3 {
                #expect(try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).status == 200)
            }
            let refused = try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [("Authorization", "Bearer nope")])
            #expect(refused.status == 401)
            try await client.close()
            // An admin change and an admin refusal made before routing (no token): their records are not calls.
            #expect(try await api.send("POST", "/admin/v1/merchants/m2/suspend", as: .operator, headers: [("If-Match", try await api.etag("m2"))]).status == 200)
            #expect(try await api.send("POST", "/admin/v1/merchants/m2/resume", as: nil).status == 401)
            await api.gw.audit.flush()

            let answer = try await api.send("GET", "/admin/v1/audit/traffic?minutes=5", as: .viewer)
            #expect(answer.status == 200)
            let json = answer.json
            #expect(json["calls"]?.intValue == 4)
            #expect(json["errors"]?.intValue == 1)
            #expect(json["truncated"]?.boolValue == false)
            #expect(json["errors_by_code"] == .array([.object([("code", .string("GATEWAY_UNAUTHENTICATED")), ("calls", .int(1))])]))
            #expect(json["by_status"]?.arrayValue?.first == .object([("status", .string("200")), ("calls", .int(3))]))
            let hosts = json["hosts"]?.arrayValue ?? []
            #expect(hosts.contains { $0["host"]?.stringValue?.hasPrefix("localhost:") == true && $0["calls"]?.intValue == 3 })
            #expect(Self.isNumber(json["upstream_latency_ms"]?["p50"]))
            #expect((json["per_minute"]?.arrayValue ?? []).reduce(0) { $0 + ($1["calls"]?.intValue ?? 0) } == 4)
            #expect(Self.isNumber(json["requests_per_second"]) && json["requests_per_second"] != .double(0))

            for bad in ["0", "61", "x"] {
                #expect(try await api.send("GET", "/admin/v1/audit/traffic?minutes=\(bad)", as: .viewer).status == 400)
            }
            #expect(try await api.send("GET", "/admin/v1/audit/traffic", as: nil).status == 401)
        }
    }
}
