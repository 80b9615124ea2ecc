import Foundation
@testable import GatewayApp
import GatewayCore
import GRDB
import GatewayTestSupport
import Testing

/// A partner's settings changed and a partner removed through the admin API: security only, under its ETag, checked
/// as `partners add` and a pin are, audited with the partner named (refusals too), loaded by the gateway.
@Suite("Admin API partner change and removal")
struct AdminAPIPartnerChangeTests {
    /// The partner columns of a request's audit records: (phase, partner, environment, operation, error code).
    static func partnerRecords(_ api: AdminAPIHarness, _ requestID: String?) async throws -> [[String]] {
        await api.gw.audit.flush()
        return try await DatabaseQueue(path: api.gw.auditPath).read { db in
            try Row.fetchAll(
                db, sql: "SELECT phase, partner_id, environment, operation_id, gateway_error_code, caller_id FROM audit_records WHERE request_id = ? ORDER BY seq",
                arguments: [requestID ?? "-"]
            ).map { row in (0..<6).map { (row[$0] as String?) ?? "-" } }
        }
    }

    /// The partner's ETag as the list answers it.
    static func etag(_ api: AdminAPIHarness, _ id: String) async throws -> String {
        let listed = try await api.send("GET", "/admin/v1/partners", as: .viewer)
        return try #require(listed.json["partners"]?.arrayValue?.first { $0["id"]?.stringValue == id }?["etag"]?.stringValue)
    }

    @Test("security changes a partner's base URL, auth form and default release under its ETag; viewer and operator 403; 428, 412, 404; bad values 400 and recorded, nothing changed; intent and outcome name the partner; the gateway loads it")
    func changePartner() async throws {
        try await withAdminAPI { api in
            func patch(_ role: AdminRole, _ ifMatch: String?, _ body: String, partner: String = "acq") async throws -> TestHTTPResponse {
                try await api.send("PATCH", "/admin/v1/partners/\(partner)", as: role, headers: ifMatch.map { [("If-Match", $0)] } ?? [], body: body)
            }
            let etag = try await Self.etag(api, "acq")
            let before = try #require(try await api.gw.admin.store.partner(id: "acq"))
            let change = #"{"base_url":"https://localhost:1/klarna","auth_form":"empty-user","default_release":"r5"}"#
            #expect(try await patch(.viewer, etag, change).status == 403)
            #expect(try await patch(.operator, etag, change).status == 403)
            #expect(try await patch(.security, nil, change).status == 428)
            #expect(try await patch(.security, AdminAPITests.staleETag, change).status == 412)
            #expect(try await patch(.security, etag, change, partner: "ghost").status == 404)
            // Each refused as the CLI's checks refuse it, before the intent: a plain-HTTP URL, a Klarna host of the other
            // environment, an unknown release, an unknown auth form, nothing to change, an unknown field.
            for bad in [
                #"{"base_url":"http://localhost:1"}"#, #"{"base_url":"https://api-global.klarna.com"}"#, #"{"default_release":"r99"}"#,
                #"{"auth_form":"bearer"}"#, "{}", #"{"environment":"live"}"#,
            ] {
                let refused = try await patch(.security, etag, bad)
                #expect(refused.status == 400, "\(bad): \(refused.status) \(refused.text)")
                #expect(try await Self.partnerRecords(api, refused.header("Klarna-Gateway-Request-Id")).map { $0[0] + " " + $0[4] } == ["refusal GATEWAY_BAD_REQUEST"], "\(bad)")
            }
            #expect(try await api.gw.admin.store.partner(id: "acq") == before, "a refused change changed the partner")

            let changed = try await patch(.security, etag, change)
            #expect(changed.status == 200, "\(changed.text)")
            #expect(changed.json["base_url"]?.stringValue == "https://localhost:1/klarna" && changed.json["auth_form"]?.stringValue == "empty-user")
            #expect(changed.json["default_release"]?.stringValue == "r5")
            #expect(changed.header("ETag") == changed.json["etag"]?.stringValue && changed.header("ETag") != etag)
            #expect(changed.json["api_key"]?["version"]?.intValue == before.apiKey.version, "the secrets are not touched")
            let records = try await Self.partnerRecords(api, changed.header("Klarna-Gateway-Request-Id"))
            #expect(records == [
                ["intent", "acq", "test", "admin.updatePartner", "-", "admin:security-admin"], ["outcome", "acq", "test", "admin.updatePartner", "-", "admin:security-admin"],
            ])
            try await waitUntil("the gateway loads the changed partner") {
                let partner = api.gw.service.runtime.snapshots.current.partners["acq"]?.record
                return partner?.baseURL == "https://localhost:1/klarna" && partner?.defaultRelease == "r5" && partner?.authForm == .emptyUser
            }
            #expect(try await patch(.security, etag, change).status == 412, "the old ETag is stale now")
            // null removes the default release and leaves the rest.
            let newTag: String = try #require(changed.header("ETag"))
            let cleared = try await patch(.security, newTag, #"{"default_release":null}"#)
            #expect(cleared.status == 200 && cleared.json["default_release"] == .null && cleared.json["base_url"]?.stringValue == "https://localhost:1/klarna")
            #expect(try await api.gw.admin.store.partner(id: "acq")?.defaultRelease == nil)
        }
    }

    @Test("security removes a partner no merchant uses, with its sealed secrets, under its ETag; 409 while merchants use it (intent, then the refusal); viewer and operator 403; 428, 412, 404; no secret anywhere after")
    func removePartner() async throws {
        try await withAdminAPI { api in
            // A partner of its own, with a key planted for the search at the end (generated: no key-shaped literal).
            let key = "klarna_test_api_SPARE" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
            let identity = try TestPKI(name: "spare partner CA").issueClient(commonName: "spare")
            _ = try await api.gw.admin.addPartner(NewPartner(
                id: "spare", environment: .test, apiKey: Secret(key), certificatePEM: identity.certificatePEM, clientKeyPEM: Secret(identity.privateKeyPEM),
                baseURL: "https://localhost:1"))
            var answers: [TestHTTPResponse] = []
            func delete(_ role: AdminRole, _ ifMatch: String?, partner: String = "spare") async throws -> TestHTTPResponse {
                let answer = try await api.send("DELETE", "/admin/v1/partners/\(partner)", as: role, headers: ifMatch.map { [("If-Match", $0)] } ?? [])
                answers.append(answer)
                return answer
            }
            let etag = try await Self.etag(api, "spare")
            #expect(try await delete(.viewer, etag).status == 403)
            #expect(try await delete(.operator, etag).status == 403)
            #expect(try await delete(.security, nil).status == 428)
            #expect(try await delete(.security, AdminAPITests.staleETag).status == 412)
            #expect(try await delete(.security, etag, partner: "ghost").status == 404)

            // m_live uses acq_live: refused with 409 after the intent, nothing deleted.
            let inUse = try await delete(.security, try await Self.etag(api, "acq_live"), partner: "acq_live")
            #expect(inUse.status == 409 && inUse.errorCode == "GATEWAY_CONFLICT" && inUse.text.contains("1 merchant"), "\(inUse.text)")
            #expect(try await Self.partnerRecords(api, inUse.header("Klarna-Gateway-Request-Id")).map { "\($0[0]) \($0[4])" } == ["intent -", "refusal GATEWAY_CONFLICT"])
            #expect(try await api.gw.admin.store.partner(id: "acq_live") != nil)

            let removed = try await delete(.security, etag)
            #expect(removed.status == 200 && removed.json["id"]?.stringValue == "spare", "\(removed.text)")
            #expect(try await Self.partnerRecords(api, removed.header("Klarna-Gateway-Request-Id")) == [
                ["intent", "spare", "test", "admin.removePartner", "-", "admin:security-admin"], ["outcome", "spare", "test", "admin.removePartner", "-", "admin:security-admin"],
            ])
            #expect(try await api.gw.admin.store.partner(id: "spare") == nil)
            let left = try await api.gw.admin.store.sealedSecrets().filter { $0.owner == SecretOwner.partner("spare") }
            #expect(left.isEmpty, "the partner's sealed secrets are removed with it")
            try await waitUntil("the gateway drops the partner") { api.gw.service.runtime.snapshots.current.partners["spare"] == nil }
            #expect(try await delete(.security, etag).status == 404, "removed twice")
            let orphan = try await api.send(
                "POST", "/admin/v1/merchants", as: .operator, body: #"{"id":"m-spare","partner_id":"spare","account":"krn:partner:global:account:test:SPARE1"}"#)
            #expect(orphan.status == 404, "a merchant cannot name the removed partner")

            let keyBody = identity.privateKeyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            try await AdminAPIPartnerCredentialTests.expectNowhere(
                [key, secretPart(ofPrivateKeyPEM: identity.privateKeyPEM), String(keyBody.suffix(40))], after: answers, in: api, recordedAs: "admin.removePartner")
        }
    }
}
