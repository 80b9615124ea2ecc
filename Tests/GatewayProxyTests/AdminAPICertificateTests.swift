import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import GRDB
import Testing

/// Admins authenticated by client certificate on the admin listener's real TLS (a throwaway CA for the listener
/// and another for the admins), against the harness's real SQLite store and audit trail.
@Suite("Admin API client certificates")
struct AdminAPICertificateTests {
    /// (caller, auth method, certificate fingerprint, phase, error code) of a request's audit records.
    static func authentication(_ api: AdminAPIHarness, _ requestID: String?) async throws -> [(String?, String?, String?, String, String?)] {
        await api.gw.audit.flush()
        return try await DatabaseQueue(path: api.gw.auditPath).read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT caller_id, auth_method, caller_cert_fingerprint, phase, gateway_error_code FROM audit_records WHERE request_id = ? ORDER BY seq",
                arguments: [requestID ?? "-"]
            ).map { ($0[0], $0[1], $0[2], $0[3], $0[4]) }
        }
    }

    @Test("a registered certificate alone is its admin with its role (viewer 403 on a change, operator allowed, both audited by name); a bound token needs exactly its certificate; an unknown certificate is 401 and backs off")
    func certificateAdmins() async throws {
        let admins = try TestPKI(name: "admin client CA")
        let backoff = AdminBackoff(base: .milliseconds(5), ceiling: .milliseconds(20))
        try await withAdminAPI(backoff: backoff, tls: true, clientCA: admins) { api in
            let listenerCA = try #require(api.tlsAuthority)
            func client(_ identity: TestPKI.Identity?) -> TestHTTPClient {
                TestHTTPClient(
                    port: api.server.port,
                    tls: TestTLS(trustRootsPEM: listenerCA.caCertificatePEM, clientCertificatePEM: identity?.certificatePEM, clientKeyPEM: identity?.privateKeyPEM))
            }
            let viewerCertificate = try admins.issueClient(commonName: "night viewer")
            let operatorCertificate = try admins.issueClient(commonName: "night operator")
            let stranger = try admins.issueClient(commonName: "no admin")

            // The viewer is added through the API (the fingerprint in openssl's colon form), the operator as the CLI adds it.
            let colons = stride(from: 0, to: 64, by: 2).map { offset in
                let start = viewerCertificate.fingerprint.index(viewerCertificate.fingerprint.startIndex, offsetBy: offset)
                return viewerCertificate.fingerprint[start..<viewerCertificate.fingerprint.index(start, offsetBy: 2)].uppercased()
            }.joined(separator: ":")
            let added = try await api.send(
                "POST", "/admin/v1/admins", as: .security, body: #"{"name":"cert-viewer","role":"viewer","certificate_fingerprint":"\#(colons)"}"#)
            #expect(added.status == 201, "\(added.text)")
            #expect(added.json["admin"]?["certificate_fingerprint"]?.stringValue == viewerCertificate.fingerprint)
            #expect(try await api.auditRecords(added.header("Klarna-Gateway-Request-Id")).map(\.1) == ["admin:security-admin", "admin:security-admin"])
            let operatorToken = try await api.gw.admin.addAdmin(name: "cert-operator", role: .operator, certificateFingerprint: operatorCertificate.fingerprint)
                .token.exposedValue
            let listed = try await api.send("GET", "/admin/v1/admins", as: .security)
            let fingerprints = Dictionary(
                uniqueKeysWithValues: (listed.json["admins"]?.arrayValue ?? []).compactMap { admin in
                    admin["name"]?.stringValue.map { ($0, admin["certificate_fingerprint"]?.stringValue ?? "none") }
                })
            #expect(fingerprints["cert-viewer"] == viewerCertificate.fingerprint && fingerprints["cert-operator"] == operatorCertificate.fingerprint)
            #expect(fingerprints["viewer-admin"] == "none")
            // A certificate names one account.
            let taken = try await api.send(
                "POST", "/admin/v1/admins", as: .security,
                body: #"{"name":"twin","role":"security","certificate_fingerprint":"\#(operatorCertificate.fingerprint)"}"#)
            #expect(taken.status == 409)

            // Certificate only: each is its account and role.
            let viewer = client(viewerCertificate)
            let whoami = try await viewer.send("GET", "/admin/v1/account")
            #expect(whoami.status == 200 && whoami.json["name"]?.stringValue == "cert-viewer" && whoami.json["role"]?.stringValue == "viewer", "\(whoami.text)")
            let etag = try #require(try await viewer.send("GET", "/admin/v1/merchants/m3").header("ETag"))
            let forbidden = try await viewer.send("POST", "/admin/v1/merchants/m3/suspend", headers: [("If-Match", etag)])
            #expect(forbidden.status == 403)
            let forbiddenRecords = try await Self.authentication(api, forbidden.header("Klarna-Gateway-Request-Id"))
            #expect(forbiddenRecords.count == 1)
            #expect(forbiddenRecords.first?.0 == "admin:cert-viewer" && forbiddenRecords.first?.1 == "certificate")
            #expect(forbiddenRecords.first?.2 == viewerCertificate.fingerprint && forbiddenRecords.first?.4 == "GATEWAY_FORBIDDEN")
            #expect(try await api.gw.admin.showMerchant(id: "m3").status == .active)

            let operatorClient = client(operatorCertificate)
            let suspended = try await operatorClient.send("POST", "/admin/v1/merchants/m3/suspend", headers: [("If-Match", etag)])
            #expect(suspended.status == 200, "\(suspended.text)")
            #expect(try await api.gw.admin.showMerchant(id: "m3").status == .suspended)
            let changeRecords = try await Self.authentication(api, suspended.header("Klarna-Gateway-Request-Id"))
            #expect(changeRecords.map(\.3) == ["intent", "outcome"])
            #expect(changeRecords.allSatisfy { $0.0 == "admin:cert-operator" && $0.1 == "certificate" && $0.2 == operatorCertificate.fingerprint })

            // The operator's token is bound: with its certificate it works, without it or with another it does not.
            let bound = ("Authorization", "Bearer \(operatorToken)")
            let both = try await operatorClient.send("GET", "/admin/v1/account", headers: [bound])
            #expect(both.status == 200 && both.json["name"]?.stringValue == "cert-operator")
            #expect(try await Self.authentication(api, both.header("Klarna-Gateway-Request-Id")).isEmpty, "reads are not recorded")
            let wrongCertificate = try await viewer.send("GET", "/admin/v1/account", headers: [bound])
            #expect(wrongCertificate.status == 401)
            let wrongRecords = try await Self.authentication(api, wrongCertificate.header("Klarna-Gateway-Request-Id"))
            #expect(wrongRecords.count == 1 && wrongRecords.first?.0 == nil && wrongRecords.first?.4 == "GATEWAY_UNAUTHENTICATED")
            let anonymous = client(nil)
            #expect(try await anonymous.send("GET", "/admin/v1/account", headers: [bound]).status == 401)
            // One admin's unbound token beside another admin's certificate: parts of two identities.
            #expect(try await viewer.send("GET", "/admin/v1/account", headers: [api.bearer(.operator)]).status == 401)
            // An unbound token beside a certificate no admin holds is that token's account, as for callers.
            let strangerClient = client(stranger)
            #expect(try await strangerClient.send("GET", "/admin/v1/account", headers: [api.bearer(.viewer)]).json["name"]?.stringValue == "viewer-admin")

            // A certificate no admin holds, alone: 401 like a wrong token, in the same back-off, recorded by fingerprint.
            #expect(backoff.delay(for: "127.0.0.1") == .zero, "the success just before ended any wait")
            let unknown = try await strangerClient.send("GET", "/admin/v1/account")
            #expect(unknown.status == 401 && unknown.errorCode == "GATEWAY_UNAUTHENTICATED")
            #expect(backoff.delay(for: "127.0.0.1") > .zero, "the refusal counts in the back-off")
            let unknownRecords = try await Self.authentication(api, unknown.header("Klarna-Gateway-Request-Id"))
            #expect(unknownRecords.count == 1 && unknownRecords.first?.0 == nil && unknownRecords.first?.2 == stranger.fingerprint)
            // No certificate and no token: 401 as before.
            #expect(try await anonymous.send("GET", "/admin/v1/account").status == 401)

            // Certificate only (token: false): no token in the answer or anywhere, the certificate alone is the account.
            let badge = try admins.issueClient(commonName: "night badge")
            let noFingerprint = try await api.send("POST", "/admin/v1/admins", as: .security, body: #"{"name":"lonely","role":"viewer","token":false}"#)
            #expect(noFingerprint.status == 400 && noFingerprint.text.contains("needs certificate_fingerprint"), "\(noFingerprint.text)")
            let certificateOnly = try await api.send(
                "POST", "/admin/v1/admins", as: .security,
                body: #"{"name":"badge","role":"viewer","certificate_fingerprint":"\#(badge.fingerprint)","token":false}"#)
            #expect(certificateOnly.status == 201, "\(certificateOnly.text)")
            #expect(certificateOnly.json["token"] == nil && !certificateOnly.text.contains("adm_kgw_"), "\(certificateOnly.text)")
            #expect(certificateOnly.json["admin"]?["has_token"]?.boolValue == false)
            #expect(added.json["admin"]?["has_token"]?.boolValue == true)
            let badgeClient = client(badge)
            let badgeWhoami = try await badgeClient.send("GET", "/admin/v1/account")
            #expect(badgeWhoami.status == 200 && badgeWhoami.json["name"]?.stringValue == "badge", "\(badgeWhoami.text)")
            #expect(try await api.gw.admin.adminAccount(certificateFingerprint: badge.fingerprint)?.hasToken == false)
            try? await badgeClient.close()

            // Removing the account stops its certificate at once.
            #expect(try await api.send("DELETE", "/admin/v1/admins/cert-viewer", as: .security).status == 200)
            #expect(try await viewer.send("GET", "/admin/v1/account").status == 401)
            for connection in [viewer, operatorClient, anonymous, strangerClient] { try? await connection.close() }
        }
    }

    @Test("the served binary: admin.tls's client_ca and client_certificates let a certificate admin in; a replaced listener certificate is served after a reload (read off real handshakes before and after), a broken one is rejected and the new one stays")
    func servedCertificateReload() async throws {
        try await withGateway { gw in
            let first = try TestPKI(name: "admin listener CA one")
            let second = try TestPKI(name: "admin listener CA two")
            let admins = try TestPKI(name: "admin client CA")
            let original = try first.issueServer()
            let files = try first.write(original, to: gw.directory, name: "admin-listener")
            let servedFirst = original.fingerprint
            let clientCA = gw.directory.appendingPathComponent("admin-clients-ca.pem")
            try admins.caCertificatePEM.write(to: clientCA, atomically: true, encoding: .utf8)
            let operatorCertificate = try admins.issueClient(commonName: "served operator")
            _ = try await gw.admin.addAdmin(name: "served-operator", role: .operator, certificateFingerprint: operatorCertificate.fingerprint)
            let served = try await ServedGateway.start(
                gw,
                environment: [
                    "KGW_ADMIN__TLS__CERTIFICATE": files.certificate.path, "KGW_ADMIN__TLS__PRIVATE_KEY": files.key.path,
                    "KGW_ADMIN__TLS__CLIENT_CA": clientCA.path, "KGW_ADMIN__TLS__CLIENT_CERTIFICATES": "optional",
                ])
            // Trusting both CAs, so that a handshake succeeds with either certificate and the fingerprint tells which.
            let both = TestTLS(trustRootsPEM: first.caCertificatePEM + "\n" + second.caCertificatePEM)
            #expect(try await TLSProbe.serverCertificateFingerprint(port: served.adminPort, tls: both) == servedFirst)

            let withCertificate = TestHTTPClient(
                port: served.adminPort,
                tls: TestTLS(
                    trustRootsPEM: both.trustRootsPEM, clientCertificatePEM: operatorCertificate.certificatePEM, clientKeyPEM: operatorCertificate.privateKeyPEM))
            let whoami = try await withCertificate.send("GET", "/admin/v1/account")
            #expect(whoami.status == 200 && whoami.json["name"]?.stringValue == "served-operator", "\(whoami.text)")
            #expect(try await TestHTTPClient(port: served.adminPort, tls: both).send("GET", "/admin/v1/account").status == 401)

            // Replace the pair (each file renamed into place), then SIGHUP, as docs/operations.md says.
            let replacement = try second.issueServer()
            _ = try second.write(replacement, to: gw.directory, name: "admin-listener")
            served.child.kill(SIGHUP)
            try await waitUntil("the admin listener serving the new certificate") {
                (try? await TLSProbe.serverCertificateFingerprint(port: served.adminPort, tls: both)) == replacement.fingerprint
            }
            #expect(replacement.fingerprint != servedFirst)
            try await served.waitForLog("listener certificates reloaded")
            // The connection made before keeps working, and new ones still authenticate the admin by its certificate.
            #expect(try await withCertificate.send("GET", "/admin/v1/account").status == 200)
            let fresh = TestHTTPClient(
                port: served.adminPort,
                tls: TestTLS(
                    trustRootsPEM: second.caCertificatePEM, clientCertificatePEM: operatorCertificate.certificatePEM,
                    clientKeyPEM: operatorCertificate.privateKeyPEM))
            #expect(try await fresh.send("GET", "/admin/v1/account").json["name"]?.stringValue == "served-operator")
            let metrics = try await fresh.send("GET", "/metrics")
            #expect(metrics.text.contains(#"kgw_config_reloads_total{result="applied"}"#), "the reload is counted as the listeners' are")

            // A broken key is rejected: the certificate in force stays.
            try "not a key".write(to: files.key, atomically: true, encoding: .utf8)
            served.child.kill(SIGHUP)
            try await served.waitForLog("reload rejected")
            #expect(try await TLSProbe.serverCertificateFingerprint(port: served.adminPort, tls: both) == replacement.fingerprint)
            for client in [withCertificate, fresh] { try? await client.close() }
            #expect(try await served.stop() == 0)
        }
    }
}
