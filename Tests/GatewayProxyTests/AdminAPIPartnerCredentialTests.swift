import Foundation
@testable import GatewayApp
import GatewayCore
import GRDB
import GatewayTestSupport
import Testing

/// A partner's API key and client certificate replaced through the admin API: security only, sealed at once, and
/// the uploaded secrets in no answer, log line or audit record.
@Suite("Admin API partner credentials")
struct AdminAPIPartnerCredentialTests {
    @Test("security uploads a new API key and certificate with its key; sealed at once; viewer and operator 403; If-Match 428/412; no secret anywhere after")
    func replaceCredentials() async throws {
        try await withAdminAPI(tls: true) { api in
            let newKey = "klarna_test_api_UPLOADED" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
            let identity = try TestPKI(name: "partner upload CA").issueClient(commonName: "acq-next")
            let keyBody = identity.privateKeyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            func json(_ text: String) -> String { JSONValue.string(text).text }
            let upload = #"{"api_key":\#(json(newKey)),"certificate_pem":\#(json(identity.certificatePEM)),"private_key_pem":\#(json(identity.privateKeyPEM))}"#
            var answers: [TestHTTPResponse] = []
            func send(_ role: AdminRole, _ ifMatch: String?, _ body: String = upload, partner: String = "acq") async throws -> TestHTTPResponse {
                let answer = try await api.send("PUT", "/admin/v1/partners/\(partner)/credentials", as: role, headers: ifMatch.map { [("If-Match", $0)] } ?? [], body: body)
                answers.append(answer)
                return answer
            }
            let listed = try await api.send("GET", "/admin/v1/partners", as: .viewer)
            let acq = try #require(listed.json["partners"]?.arrayValue?.first { $0["id"]?.stringValue == "acq" })
            let etag = try #require(acq["etag"]?.stringValue)
            let before = try #require(try await api.gw.admin.store.partner(id: "acq"))

            #expect(try await send(.viewer, etag).status == 403)
            #expect(try await send(.operator, etag).status == 403)
            #expect(try await send(.security, nil).status == 428)
            #expect(try await send(.security, AdminAPITests.staleETag).status == 412)
            #expect(try await send(.security, etag, partner: "ghost").status == 404)
            // Refused before anything is written: a live key for a test partner, a key that is not the certificate's,
            // a certificate without its key.
            let otherKey = try TestPKI(name: "other").issueClient(commonName: "x").privateKeyPEM
            // A generated key of the live form, as the harness makes them: no key-shaped literal in the source.
            let liveKey = "klarna_live_api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
            for bad in [
                #"{"api_key":\#(json(liveKey))}"#,
                #"{"certificate_pem":\#(json(identity.certificatePEM)),"private_key_pem":\#(json(otherKey))}"#,
                #"{"certificate_pem":\#(json(identity.certificatePEM))}"#, "{}", #"{"api_key":"k","extra":1}"#,
            ] {
                let refused = try await send(.security, etag, bad)
                #expect(refused.status == 400, "\(refused.status)")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.3) == ["GATEWAY_BAD_REQUEST"])
            }
            #expect(try await api.gw.admin.store.partner(id: "acq") == before, "a refused upload changed the partner")

            let replaced = try await send(.security, etag)
            #expect(replaced.status == 200)
            #expect(replaced.json["api_key"]?["version"]?.intValue == before.apiKey.version + 1)
            #expect(replaced.json["client_key"]?["version"]?.intValue == before.clientKey.version + 1)
            #expect(replaced.json["client_certificate_fingerprint"]?.stringValue == (try ClientCertificate(pem: identity.certificatePEM)).fingerprint)
            #expect(replaced.header("ETag") != etag && replaced.header("ETag") == replaced.json["etag"]?.stringValue)
            #expect(try await api.auditRecords(replaced.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])
            // Sealed: the store holds the new versions, which open to what was uploaded.
            let after = try #require(try await api.gw.admin.store.partner(id: "acq"))
            let secrets = try await api.gw.admin.store.contents().secrets
            let sealedKey = try #require(secrets.first { $0.credential == after.apiKey })
            let sealedClientKey = try #require(secrets.first { $0.credential == after.clientKey })
            #expect(try api.gw.admin.sealer.open(sealedKey).exposedValue == newKey)
            #expect(try api.gw.admin.sealer.open(sealedClientKey).exposedValue == identity.privateKeyPEM)
            #expect(try await send(.security, etag).status == 412, "the old ETag is stale now")

            try await Self.expectNowhere([newKey, secretPart(ofPrivateKeyPEM: identity.privateKeyPEM), String(keyBody.suffix(40))], after: answers, in: api,
                                         recordedAs: "admin.replacePartnerCredentials")
        }
    }

    /// Nowhere after an upload: no answer (those given, and every read as every role), the log or the audit store
    /// holds one of `secrets` or a private key's PEM; `operation` must be found there, or the search proves nothing.
    static func expectNowhere(_ secrets: [String], after answers: [TestHTTPResponse], in api: AdminAPIHarness, recordedAs operation: String) async throws {
        var text = answers.map { $0.text + $0.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n") }.joined(separator: "\n")
        text += try await api.readAsEveryRole(["/admin/v1/partners", "/admin/v1/audit/records?limit=500"])
        await api.gw.audit.flush()
        text += api.gw.logs.text
        for suffix in ["", "-wal"] {
            text += String(decoding: FileManager.default.contents(atPath: api.gw.auditPath + suffix) ?? Data(), as: UTF8.self)
        }
        #expect(text.contains(operation), "the search below would find nothing anywhere")
        for secret in secrets {
            let leaked = text.contains(secret)
            #expect(!leaked, "an uploaded secret is in an answer, the log or the audit trail")
        }
        let holdsKeyPEM = text.contains("PRIVATE KEY")
        #expect(!holdsKeyPEM, "a private key's PEM is in an answer, the log or the audit trail")
        try await api.expectNoSecret(in: text)
    }

    @Test("security adds a partner: checked, sealed at once, loaded by the gateway, named in its audit records; viewer and operator 403; a taken id 409; no secret anywhere after")
    func addPartner() async throws {
        try await withAdminAPI(tls: true) { api in
            let key = "klarna_test_api_ADDED" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
            let identity = try TestPKI(name: "partner add CA").issueClient(commonName: "acq-two")
            let keyBody = identity.privateKeyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            func json(_ text: String) -> String { JSONValue.string(text).text }
            func body(id: String = "acq_two", key: String? = nil, privateKey: String? = nil) -> String {
                #"{"id":\#(json(id)),"environment":"test","base_url":"https://localhost:9443","api_key":\#(json(key ?? "")),"certificate_pem":\#(json(identity.certificatePEM)),"private_key_pem":\#(json(privateKey ?? identity.privateKeyPEM))}"#
            }
            var answers: [TestHTTPResponse] = []
            func send(_ role: AdminRole, _ text: String) async throws -> TestHTTPResponse {
                let answer = try await api.send("POST", "/admin/v1/partners", as: role, body: text)
                answers.append(answer)
                return answer
            }
            #expect(try await send(.viewer, body(key: key)).status == 403)
            #expect(try await send(.operator, body(key: key)).status == 403)
            // Refused before anything is written: a live key for a test partner, a key that is not the certificate's,
            // a missing field, an unknown environment, an id against the rules.
            let liveKey = "klarna_live_api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
            let otherKey = try TestPKI(name: "other").issueClient(commonName: "x").privateKeyPEM
            for bad in [
                body(key: liveKey), body(key: key, privateKey: otherKey), #"{"id":"acq_two","environment":"test"}"#,
                body(key: key).replacingOccurrences(of: #""environment":"test""#, with: #""environment":"staging""#),
                body(id: "no spaces", key: key),
            ] {
                let refused = try await send(.security, bad)
                #expect(refused.status == 400, "\(refused.status): \(refused.text)")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.3) == ["GATEWAY_BAD_REQUEST"])
            }
            #expect(try await api.gw.admin.store.partner(id: "acq_two") == nil, "a refused partner was written")
            #expect(try await send(.security, body(id: "acq", key: key)).status == 409)

            let added = try await send(.security, body(key: key))
            #expect(added.status == 201, "\(added.text)")
            #expect(added.json["id"]?.stringValue == "acq_two" && added.json["environment"]?.stringValue == "test")
            #expect(added.json["client_certificate_fingerprint"]?.stringValue == (try ClientCertificate(pem: identity.certificatePEM)).fingerprint)
            #expect(added.header("ETag") == added.json["etag"]?.stringValue)
            let requestID = added.header("Klarna-Gateway-Request-Id")
            #expect(try await api.auditRecords(requestID).map(\.0) == ["intent", "outcome"])
            await api.gw.audit.flush()
            let named = try await DatabaseQueue(path: api.gw.auditPath).read { db in
                try String.fetchAll(db, sql: "SELECT partner_id FROM audit_records WHERE request_id = ? ORDER BY seq", arguments: [requestID ?? "-"])
            }
            #expect(named == ["acq_two", "acq_two"], "the records do not name the partner added")
            // Sealed, and loaded by the gateway with the key that was uploaded.
            let stored = try #require(try await api.gw.admin.store.partner(id: "acq_two"))
            let sealedKey = try #require(try await api.gw.admin.store.contents().secrets.first { $0.credential == stored.apiKey })
            #expect(try api.gw.admin.sealer.open(sealedKey).exposedValue == key)
            try await waitUntil("the gateway loads the new partner") { api.gw.service.runtime.snapshots.current.partners["acq_two"] != nil }
            #expect(try await send(.security, body(key: key)).status == 409, "added twice")

            try await Self.expectNowhere([key, secretPart(ofPrivateKeyPEM: identity.privateKeyPEM), String(keyBody.suffix(40))], after: answers, in: api,
                                         recordedAs: "admin.addPartner")
        }
    }
}
