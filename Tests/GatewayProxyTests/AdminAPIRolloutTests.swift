import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Roll-outs applied and rolled back through the admin API, under the roll-out set's `ETag`, and the history.
@Suite("Admin API roll-outs")
struct AdminAPIRolloutTests {
    @Test("apply a previewed roll-out and roll it back: each role's rights, If-Match missing 428 and stale 412, the snapshot follows, the history names the admin")
    func applyAndRollBack() async throws {
        try await withAdminAPI(tls: true) { api in
            let empty = try await api.send("GET", "/admin/v1/releases/rollouts", as: .viewer)
            #expect(empty.status == 200 && empty.json["rollouts"] == .array([]))
            let first = try #require(empty.header("ETag"))
            let rollout = #"{"release":"r8","percent":100,"group":"eu"}"#
            #expect(try await api.send("POST", "/admin/v1/releases/rollouts", as: .viewer, headers: [("If-Match", first)], body: rollout).status == 403)
            #expect(try await api.send("POST", "/admin/v1/releases/rollouts", as: .operator, body: rollout).status == 428)
            #expect(try await api.send("POST", "/admin/v1/releases/rollouts", as: .operator, headers: [("If-Match", AdminAPITests.staleETag)], body: rollout).status == 412)
            for bad in [#"{"release":"r8","percent":101}"#, #"{"release":"r8"}"#, #"{"release":"r8","percent":"10"}"#, #"{"release":"r8","percent":5,"group":"a b"}"#] {
                #expect(try await api.send("POST", "/admin/v1/releases/rollouts", as: .operator, headers: [("If-Match", first)], body: bad).status == 400, "\(bad)")
            }
            #expect(try await api.send("POST", "/admin/v1/releases/rollouts", as: .operator, headers: [("If-Match", first)], body: #"{"release":"r99","percent":5}"#).status == 404)
            #expect(try await api.gw.admin.store.rollouts().isEmpty, "a refused roll-out was stored")

            let preview = try await api.send("GET", "/admin/v1/releases/rollout-preview?environment=test&release=r8&group=eu", as: .viewer)
            let applied = try await api.send("POST", "/admin/v1/releases/rollouts", as: .operator, headers: [("If-Match", first)], body: rollout)
            #expect(applied.status == 200)
            #expect(applied.json["merchants"]?.intValue == 2)  // m2 and m4 are the eu group
            #expect(try await api.gw.admin.store.rollouts() == [Rollout(release: "r8", percent: 100, group: "eu")])
            let second = try #require(applied.header("ETag"))
            #expect(second != first)
            #expect(try await api.send("GET", "/admin/v1/releases/rollouts", as: .viewer).header("ETag") == second)
            let records = try await api.auditRecords(applied.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.4 == "admin.applyRollout" })
            try await api.gw.waitForReload()
            // What the preview said would move has moved: the same preview now moves nobody.
            let after = try await api.send("GET", "/admin/v1/releases/rollout-preview?environment=test&release=r8&group=eu", as: .viewer)
            #expect(preview.json["moving"]?.intValue == 2)
            #expect(after.json["moving"]?.intValue == 0)
            #expect(try await api.send("GET", "/admin/v1/releases", as: .viewer).json["rollouts"]?.arrayValue?.count == 1)

            let history = try await api.send("GET", "/admin/v1/releases/history?limit=5", as: .viewer)
            #expect(history.json["events"]?.arrayValue?.first?["actor"]?.stringValue == "admin:operator-admin")
            #expect(history.json["events"]?.arrayValue?.first?["action"]?.stringValue == "releases.rollout")

            #expect(try await api.send("DELETE", "/admin/v1/releases/rollouts/r8", as: .viewer, headers: [("If-Match", second)]).status == 403)
            #expect(try await api.send("DELETE", "/admin/v1/releases/rollouts/r8", as: .operator).status == 428)
            let stale = try await api.send("DELETE", "/admin/v1/releases/rollouts/r8", as: .operator, headers: [("If-Match", first)])
            #expect(stale.status == 412 && stale.header("ETag") == second)
            let rolledBack = try await api.send("DELETE", "/admin/v1/releases/rollouts/r8", as: .security, headers: [("If-Match", second)])
            #expect(rolledBack.status == 200)
            #expect(rolledBack.json["removed"]?.intValue == 1 && rolledBack.json["rollouts"] == .array([]))
            #expect(try await api.gw.admin.store.rollouts().isEmpty)
            #expect(try await api.auditRecords(rolledBack.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            let third = try #require(rolledBack.header("ETag"))
            #expect(try await api.send("DELETE", "/admin/v1/releases/rollouts/r8", as: .operator, headers: [("If-Match", third)]).status == 404)
            #expect(try await api.send("GET", "/admin/v1/releases/history", as: .viewer).json["events"]?.arrayValue?.first?["action"]?.stringValue == "releases.rollback")
        }
    }
}
