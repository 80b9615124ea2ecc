import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// The admin listener over TLS (`admin.tls`): the served binary, a real handshake, tokens only inside it.
@Suite("Admin API over TLS")
struct AdminAPITLSTests {
    @Test("off loopback the admin listener needs tls; with a certificate and key configured it is accepted")
    func configuration() throws {
        let path = ShippedConfigTests.repository.appendingPathComponent("config/demo.yaml").path
        #expect(throws: ConfigError.self) { try ConfigLoader.loadGateway(path: path, environment: ["KGW_ADMIN__ADDRESS": "10.0.0.1"]) }
        let config = try ConfigLoader.loadGateway(
            path: path,
            environment: ["KGW_ADMIN__ADDRESS": "10.0.0.1", "KGW_ADMIN__TLS__CERTIFICATE": "admin.pem", "KGW_ADMIN__TLS__PRIVATE_KEY": "admin-key.pem"])
        #expect(config.admin?.tls?.certificate == "admin.pem")
        #expect(config.admin?.tls?.privateKey == "admin-key.pem")
        // The files are read when the listener starts (and by `config check`): a missing one is named.
        let admin = try #require(config.admin)
        #expect(throws: ConfigError.self) { try AdminServer.tlsContext(admin, config: config) }
        // Client certificates for admins need the CA that signs them, as a listener's do.
        let tls = ["KGW_ADMIN__ADDRESS": "10.0.0.1", "KGW_ADMIN__TLS__CERTIFICATE": "admin.pem", "KGW_ADMIN__TLS__PRIVATE_KEY": "admin-key.pem"]
        #expect(throws: ConfigError.self) {
            try ConfigLoader.loadGateway(path: path, environment: tls.merging(["KGW_ADMIN__TLS__CLIENT_CERTIFICATES": "optional"]) { $1 })
        }
        let verifying = try ConfigLoader.loadGateway(
            path: path, environment: tls.merging(["KGW_ADMIN__TLS__CLIENT_CERTIFICATES": "required", "KGW_ADMIN__TLS__CLIENT_CA": "admins-ca.pem"]) { $1 })
        #expect(verifying.admin?.tls?.clientCertificates == .required && verifying.admin?.tls?.clientCA == "admins-ca.pem")
        #expect(config.admin?.tls?.clientCertificates == nil, "none unless asked for")
    }

    @Test("the served binary off loopback answers the admin API over real TLS, keeps /metrics and /readyz's details for admin tokens, refuses plain HTTP and PUT /log-level there, and no answer or log holds the key")
    func servedOverTLS() async throws {
        try await withGateway { gw in
            let pki = try TestPKI(name: "admin listener CA")
            let identity = try pki.issueServer()
            let files = try pki.write(identity, to: gw.directory, name: "admin-listener")
            let viewer = try await gw.admin.addAdmin(name: "watch", role: .viewer).token.exposedValue
            let operatorToken = try await gw.admin.addAdmin(name: "ops", role: .operator).token.exposedValue
            // Every address, so off loopback: allowed because of tls.
            let served = try await ServedGateway.start(
                gw,
                environment: [
                    "KGW_ADMIN__ADDRESS": "0.0.0.0", "KGW_ADMIN__TLS__CERTIFICATE": files.certificate.path, "KGW_ADMIN__TLS__PRIVATE_KEY": files.key.path,
                ])
            let client = TestHTTPClient(port: served.adminPort, tls: TestTLS(trustRootsPEM: pki.caCertificatePEM))
            var answers: [TestHTTPResponse] = []
            for path in ["/admin/v1/audit/status", "/admin/v1/releases", "/admin/v1/upstreams", "/admin/v1/merchants/m3"] {
                let answer = try await client.send("GET", path, headers: [("Authorization", "Bearer \(viewer)")])
                #expect(answer.status == 200, "\(path)")
                answers.append(answer)
            }
            #expect(answers[0].json["enabled"]?.boolValue == true)
            let etag = try #require(answers[3].header("ETag"))
            let suspended = try await client.send("POST", "/admin/v1/merchants/m3/suspend", headers: [("Authorization", "Bearer \(operatorToken)"), ("If-Match", etag)])
            #expect(suspended.status == 200)
            answers.append(suspended)
            #expect(try await gw.admin.showMerchant(id: "m3").status == .suspended)
            // Off loopback a probe without a token learns only whether to send traffic; a token shows the rest.
            let ready = try await client.send("GET", "/readyz")
            #expect(ready.status == 200)
            #expect(ready.text == "{\"ready\":true}")
            answers.append(ready)
            let detailed = try await client.send("GET", "/readyz", headers: [("Authorization", "Bearer \(viewer)")])
            #expect(detailed.status == 200 && detailed.json["audit"] != nil && detailed.json["upstream"] != nil, "\(detailed.text)")
            answers.append(detailed)
            #expect(try await client.send("GET", "/readyz", headers: [("Authorization", "Bearer kgwa_wrong")]).status == 401)
            #expect(try await client.send("GET", "/healthz").status == 200)
            // Metrics need a token of any role there, and a refused scrape is audited like the API's refusals.
            let anonymous = try await client.send("GET", "/metrics")
            #expect(anonymous.status == 401)
            #expect(anonymous.json["error_code"]?.stringValue == "GATEWAY_UNAUTHENTICATED", "\(anonymous.text)")
            #expect(anonymous.text.contains("/metrics needs Authorization"), "\(anonymous.text)")
            answers.append(anonymous)
            let scraped = try await client.send("GET", "/metrics", headers: [("Authorization", "Bearer \(viewer)")])
            #expect(scraped.status == 200 && scraped.text.contains("kgw_"), "\(scraped.status)")
            answers.append(scraped)
            // Off loopback the log level, which takes no token, can be read but not set.
            #expect(try await client.send("PUT", "/log-level", body: Array("debug".utf8)).status == 403)
            #expect(try await client.send("GET", "/log-level").text.contains("\"info\""))
            try await client.close()

            // Plain HTTP to the TLS port gets no HTTP answer: a token sent that way never reaches the API.
            let plain = TestHTTPClient(port: served.adminPort, tls: nil)
            let refused: TestHTTPResponse? = try? await plain.send("GET", "/admin/v1/merchants", headers: [("Authorization", "Bearer \(viewer)")])
            #expect(refused == nil || refused?.status == 400 || refused?.status == 0, "plain HTTP was answered: \(refused?.status ?? -1)")
            try? await plain.close()
            // A client that does not trust the listener's CA does not get through the handshake.
            let stranger = TestHTTPClient(port: served.adminPort, tls: TestTLS(trustRootsPEM: try TestPKI(name: "other CA").caCertificatePEM))
            #expect((try? await stranger.send("GET", "/healthz")) == nil)
            try? await stranger.close()

            #expect(try await served.stop() == 0)
            let text = answers.map { $0.text + $0.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n") }.joined() + served.child.stdout + served.child.stderr
            for secret in [secretPart(ofPrivateKeyPEM: identity.privateKeyPEM), String(viewer.suffix(43)), String(operatorToken.suffix(43))] + gw.plantedSecrets {
                #expect(!text.contains(secret), "a secret is in an answer or the log")
            }
        }
    }
}
