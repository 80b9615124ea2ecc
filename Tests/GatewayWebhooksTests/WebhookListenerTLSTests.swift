import Foundation
import GatewayTestSupport
import KlarnaSimulator
import Testing

/// The webhook listener's certificate files, reloaded like the proxy's listeners': in the serialized end-to-end
/// suite, so two gateways never compete for the machine.
extension WebhookEndToEndTests {
    @Test(
        "a replaced webhook listener certificate is used by new handshakes after SIGHUP, while an open connection keeps working",
        .timeLimit(.minutes(3)))
    func listenerCertificateReloaded() async throws {
        // Polling effectively off: only SIGHUP reloads.
        try await withWebhooks(environment: ["KGW_RELOAD_INTERVAL_MS": "3600000"]) { hooks in
            // A signing key from Klarna, so the closing secret search has one of those to look for too.
            _ = try await hooks.register()
            let established = try await RawConnection.open(port: hooks.webhooksPort, tls: TestTLS(trustRootsPEM: hooks.internalCA.certificatePEM))
            await established.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await established.response()?.status == 404)

            // A certificate from a CA the old clients do not trust, so which one a handshake got is unambiguous.
            let (rotatedCA, _) = try SimulatorPKI.makeCA(name: "rotated webhook listener CA")
            let fresh = TestTLS(trustRootsPEM: rotatedCA.certificatePEM)
            func answered(_ tls: TestTLS) async -> Int? {
                let client = TestHTTPClient(port: hooks.webhooksPort, tls: tls)
                defer { Task { try? await client.close() } }
                return try? await client.send("GET", "/").status
            }
            #expect(await answered(fresh) == nil, "the new CA is not in force before the reload")
            let rotated = try rotatedCA.issueServer()
            try rotated.certificatePEM.write(to: hooks.directory.appendingPathComponent("webhook-server.pem"), atomically: true, encoding: .utf8)
            try rotated.privateKeyPEM.write(to: hooks.directory.appendingPathComponent("webhook-server.key"), atomically: true, encoding: .utf8)
            #expect(await answered(fresh) == nil, "files alone change nothing until the reload")

            hooks.signalGateway(SIGHUP)
            var reloaded = false
            let deadline = ContinuousClock.now + .seconds(30)
            while !reloaded && ContinuousClock.now < deadline {
                reloaded = await answered(fresh) == 404
                if !reloaded { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(reloaded, "no handshake with the new certificate after SIGHUP")
            #expect(await answered(TestTLS(trustRootsPEM: hooks.internalCA.certificatePEM)) == nil, "the old certificate is no longer offered")
            // The connection made before keeps its session.
            await established.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await established.response()?.status == 404)
            await established.close()
            try await hooks.searchForSecrets()
        }
    }
}
