import Foundation
@testable import GatewayApp
import GatewayAudit
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 18's read-only operational resources (audit records and status, upstreams, releases) on a real admin
/// listener over a real store and SQLite audit trail.
@Suite("Admin API: operational resources")
struct AdminAPIOperationsTests {
    /// Ids of the records in an answer of `GET /admin/v1/audit/records`.
    static func requestIDs(_ response: TestHTTPResponse) -> [String] {
        response.json["records"]?.arrayValue?.compactMap { $0["request_id"]?.stringValue } ?? []
    }

    @Test("audit records are found by request id, merchant, caller, error code and time range, a page at a time, by a viewer")
    func auditRecords() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            let path = "/v2/accounts/m1" + AuditTrailTests.transaction
            let forwarded = try await client.send("GET", path, headers: [api.gw.bearer("checkout")])
            #expect(forwarded.status == 200)
            let suspended = try await api.send("POST", "/admin/v1/merchants/m2/suspend", as: .operator, headers: [("If-Match", try await api.etag("m2"))])
            #expect(suspended.status == 200)
            try await api.gw.waitForReload()
            let refused = try await client.send("GET", "/v2/accounts/m2" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
            #expect(refused.errorCode == "GATEWAY_MERCHANT_SUSPENDED")
            try await client.close()
            await api.gw.audit.flush()
            let callID = try #require(forwarded.header("Klarna-Gateway-Request-Id"))
            let refusalID = try #require(refused.header("Klarna-Gateway-Request-Id"))
            let changeID = try #require(suspended.header("Klarna-Gateway-Request-Id"))

            // One call: its intent and outcome, as `audit export` writes them (re-verifiable: both hashes).
            let byRequest = try await api.send("GET", "/admin/v1/audit/records?request_id=\(callID)", as: .viewer)
            #expect(byRequest.status == 200)
            let records = byRequest.json["records"]?.arrayValue ?? []
            #expect(records.compactMap { $0["phase"]?.stringValue } == ["intent", "outcome"])
            #expect(records.allSatisfy { $0["merchant_id"]?.stringValue == "m1" && $0["hash"]?.stringValue?.count == 64 })
            #expect(byRequest.json["next_cursor"] == .null)

            let byCode = try await api.send("GET", "/admin/v1/audit/records?error_code=GATEWAY_MERCHANT_SUSPENDED", as: .viewer)
            #expect(Self.requestIDs(byCode) == [refusalID])
            let byMerchant = try await api.send("GET", "/admin/v1/audit/records?merchant=m1", as: .viewer)
            #expect(Self.requestIDs(byMerchant) == [callID, callID])
            let byCaller = try await api.send("GET", "/admin/v1/audit/records?caller=admin%3Aoperator-admin", as: .viewer)
            #expect(Self.requestIDs(byCaller) == [changeID, changeID])
            let both = try await api.send("GET", "/admin/v1/audit/records?caller=checkout&error_code=GATEWAY_MERCHANT_SUSPENDED", as: .viewer)
            #expect(Self.requestIDs(both) == [refusalID])
            #expect(try await api.send("GET", "/admin/v1/audit/records?caller=orders&error_code=GATEWAY_MERCHANT_SUSPENDED", as: .viewer)
                .json["records"]?.arrayValue?.count == 0)

            // Time range: everything so far is before `to=now`, nothing after `from=now`.
            let now = ISO8601DateFormatter().string(from: Date().addingTimeInterval(1))
            #expect(try await api.send("GET", "/admin/v1/audit/records?from=\(now)", as: .viewer).json["records"]?.arrayValue?.count == 0)
            let until = try await api.send("GET", "/admin/v1/audit/records?to=\(now)&limit=500", as: .viewer)
            #expect(Self.requestIDs(until).contains(refusalID))
            #expect(try await api.send("GET", "/admin/v1/audit/records?from=2020-01-01&to=2020-01-02", as: .viewer).json["records"]?.arrayValue?.count == 0)

            // Paging one record at a time walks every record once, in sequence order.
            var seqs: [Int] = []
            var cursor: String?
            for _ in 0..<100 {
                let page = try await api.send("GET", "/admin/v1/audit/records?limit=1" + (cursor.map { "&after=\($0)" } ?? ""), as: .viewer)
                #expect(page.status == 200)
                seqs += page.json["records"]?.arrayValue?.compactMap { $0["seq"]?.intValue } ?? []
                guard let next = page.json["next_cursor"]?.stringValue else { break }
                cursor = next
            }
            let all = try await api.send("GET", "/admin/v1/audit/records?limit=500", as: .viewer)
            let allSeqs = all.json["records"]?.arrayValue?.compactMap { $0["seq"]?.intValue } ?? []
            #expect(allSeqs.count >= 5)
            #expect(seqs == allSeqs)
            #expect(seqs == seqs.sorted())

            // A date-time with fractional seconds and an offset is read too.
            #expect(try await api.send("GET", "/admin/v1/audit/records?to=2020-01-01T00:00:00.5%2B01:00", as: .viewer).status == 200)
            for bad in ["limit=0", "limit=501", "from=yesterday", "to=12", "after=nope", "after=-1.2.6161", "after=1.2.6", "after=1.2.zz", "request_id=" + String(repeating: "x", count: 201)] {
                let answer = try await api.send("GET", "/admin/v1/audit/records?\(bad)", as: .viewer)
                #expect(answer.errorCode == "GATEWAY_BAD_REQUEST", "\(bad)")
            }
            #expect(try await api.send("GET", "/admin/v1/audit/records", as: nil).status == 401)
        }
    }

    @Test("audit status is the writer's health and last checkpoint; upstreams show each host's breaker; a viewer reads both")
    func auditStatusAndUpstreams() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            #expect(try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).status == 200)
            try await client.close()
            await api.gw.audit.flush()

            let status = try await api.send("GET", "/admin/v1/audit/status", as: .viewer)
            #expect(status.status == 200)
            let health = api.gw.audit.health
            #expect(health.lastSeq >= 2)
            #expect(status.json["enabled"]?.boolValue == true)
            #expect(status.json["healthy"]?.boolValue == true)
            #expect(status.json["last_seq"]?.intValue == Int(health.lastSeq))
            #expect(status.json["last_checkpoint_seq"]?.intValue == Int(health.lastCheckpointSeq))
            #expect(status.json["queue_depth"]?.intValue == 0)
            #expect(status.json["last_error"] == .null)

            let upstreams = try await api.send("GET", "/admin/v1/upstreams", as: .viewer)
            #expect(upstreams.status == 200)
            #expect(upstreams.json["calls_in_flight"]?.intValue == 0)
            let hosts = upstreams.json["hosts"]?.arrayValue ?? []
            // The call above went to the simulator, the partner's upstream: its host is known and its breaker closed.
            let baseURL = try #require(try await api.gw.admin.store.partners().first { $0.id == "acq" }?.baseURL)
            #expect(hosts.count >= 1)
            #expect(hosts.allSatisfy { host in baseURL.contains(host["host"]?.stringValue ?? "?") && host["breaker"]?.stringValue == "closed" })
            #expect(try await api.send("GET", "/admin/v1/upstreams", as: nil).status == 401)
        }
    }

    @Test("releases: the calendar per environment, the latest available today, and how many merchants are pinned to each")
    func releases() async throws {
        try await withAdminAPI { api in
            let pinned = try await api.send(
                "PUT", "/admin/v1/merchants/m4/release", as: .operator, headers: [("If-Match", try await api.etag("m4"))], body: #"{"release":"r5"}"#)
            #expect(pinned.status == 200)
            try await api.gw.waitForReload()
            // The gateway may reload again on its own (its poll) around the read: the answer's snapshot is one of these.
            let before = Int(api.gw.service.runtime.snapshots.current.version)
            let answer = try await api.send("GET", "/admin/v1/releases", as: .viewer)
            let after = Int(api.gw.service.runtime.snapshots.current.version)
            #expect(answer.status == 200)
            let environments = answer.json["environments"]?.arrayValue ?? []
            #expect(environments.compactMap { $0["environment"]?.stringValue } == ["test", "live"])
            let test = try #require(environments.first)
            let calendar = api.gw.service.runtime.snapshots.current.releases
            #expect(test["releases"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == calendar.releases.map(\.id))
            let today = try #require(answer.json["today"]?.stringValue)
            #expect(test["latest"]?.stringValue == calendar.latest(in: .test, on: today)?.id)
            func pins(_ environment: JSONValue?, _ release: String) -> Int? {
                environment?["releases"]?.arrayValue?.first { $0["id"]?.stringValue == release }?["pinned_merchants"]?.intValue
            }
            #expect(pins(test, "r5") == 1)
            #expect(pins(test, "r4") == 0)
            #expect(pins(environments.last, "r5") == 0)
            #expect((before...after).contains(answer.json["snapshot"]?.intValue ?? -1))
            #expect(try await api.send("GET", "/admin/v1/releases", as: nil).status == 401)
        }
    }

    @Test("no secret in any answer of the operational resources, for every role, after calls that used every planted key")
    func noSecrets() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            for merchant in ["m1", "m2"] {
                _ = try await client.send("GET", "/v2/accounts/\(merchant)" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
            }
            try await client.close()
            _ = try await api.send("POST", "/admin/v1/merchants/m3/suspend", as: .operator, headers: [("If-Match", try await api.etag("m3"))])
            await api.gw.audit.flush()
            let text = try await api.readAsEveryRole(["/admin/v1/audit/records?limit=500", "/admin/v1/audit/status", "/admin/v1/upstreams", "/admin/v1/releases"])
            #expect(text.contains("admin:operator-admin"), "the search below would search no records")
            try await api.expectNoSecret(in: text)
            #expect(!text.contains("PRIVATE KEY"))
        }
    }
}
