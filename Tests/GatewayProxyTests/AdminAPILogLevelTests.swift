import Foundation
@testable import GatewayApp
import GatewayCore
import Testing

/// The log level as an admin resource: any role reads it, an operator changes it under If-Match, and the change
/// and every refusal are in the audit trail.
@Suite("Admin API log level")
struct AdminAPILogLevelTests {
    @Test("viewer reads the level with its ETag; an operator sets it under If-Match (428, 412, 400 for a non-level); the change is audited")
    func setUnderIfMatch() async throws {
        try await withAdminAPI { api in
            let read = try await api.send("GET", "/admin/v1/log-level", as: .viewer)
            #expect(read.status == 200)
            let level = try #require(read.json["level"]?.stringValue)
            let etag = try #require(read.header("ETag"))
            let target = level == "debug" ? "notice" : "debug"
            let body = #"{"level":"\#(target)"}"#
            #expect(try await api.send("PUT", "/admin/v1/log-level", as: .viewer, headers: [("If-Match", etag)], body: body).status == 403)
            #expect(try await api.send("PUT", "/admin/v1/log-level", as: .operator, body: body).status == 428)
            #expect(try await api.send("PUT", "/admin/v1/log-level", as: .operator, headers: [("If-Match", AdminAPITests.staleETag)], body: body).status == 412)
            let loud = try await api.send("PUT", "/admin/v1/log-level", as: .operator, headers: [("If-Match", etag)], body: #"{"level":"loud"}"#)
            #expect(loud.status == 400)
            #expect(try await api.auditRecords(loud.header("Klarna-Gateway-Request-Id")).map(\.3) == ["GATEWAY_BAD_REQUEST"])

            let set = try await api.send("PUT", "/admin/v1/log-level", as: .operator, headers: [("If-Match", etag)], body: body)
            #expect(set.status == 200)
            #expect(set.json["level"]?.stringValue == target)
            #expect(set.header("ETag") != etag)
            let records = try await api.auditRecords(set.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"])
            #expect(records.map(\.4) == ["admin.setLogLevel", "admin.setLogLevel"])
            #expect(try await api.send("PUT", "/admin/v1/log-level", as: .operator, headers: [("If-Match", etag)], body: body).status == 412, "the old ETag is stale now")
            // Back as it was: the level is the process's.
            let back = try await api.send("PUT", "/admin/v1/log-level", as: .operator, headers: [("If-Match", try #require(set.header("ETag")))], body: #"{"level":"\#(level)"}"#)
            #expect(back.status == 200)
        }
    }
}
