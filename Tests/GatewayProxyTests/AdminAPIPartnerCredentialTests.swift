import Foundation
@testable import GatewayApp
import GatewayCore
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

            // Nowhere after: no answer (these, and every read as every role), the log or the audit store.
            var text = answers.map { $0.text + $0.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n") }.joined(separator: "\n")
            text += try await api.readAsEveryRole(["/admin/v1/partners", "/admin/v1/audit/records?limit=500"])
            await api.gw.audit.flush()
            text += api.gw.logs.text
            for suffix in ["", "-wal"] {
                text += String(decoding: FileManager.default.contents(atPath: api.gw.auditPath + suffix) ?? Data(), as: UTF8.self)
            }
            #expect(text.contains("admin.replacePartnerCredentials"), "the search below would find nothing anywhere")
            for secret in [newKey, String(keyBody.prefix(40)), String(keyBody.suffix(40))] {
                let leaked = text.contains(secret)
                #expect(!leaked, "an uploaded secret is in an answer, the log or the audit trail")
            }
            let holdsKeyPEM = text.contains("PRIVATE KEY")
            #expect(!holdsKeyPEM, "a private key's PEM is in an answer, the log or the audit trail")
            try await api.expectNoSecret(in: text)
        }
    }
}
