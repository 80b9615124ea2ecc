import Foundation
import GatewayAudit
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 16, the two deadlines that cut a call still running, on the `klarna-gateway serve` binary: the drain
/// deadline after a client-certificate rotation (`upstream.drain_seconds`), and the grace of a graceful stop
/// (`shutdown_grace_seconds`). Each closes what is left at its deadline, counts it, and leaves an audit trail that
/// verifies.
@Suite("Drain and grace deadlines", .serialized)
struct DrainDeadlineTests {
    static let transaction = LifecycleTests.transaction

    /// The value of a Prometheus series line starting with `prefix`, 0 when absent.
    static func value(_ metrics: String, _ prefix: String) -> Double {
        metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
    }

    /// Makes Klarna hold its next answer `milliseconds`, runs `start` (which sends one call), and returns once the
    /// gateway's upstream connection for that call is busy waiting.
    @discardableResult
    static func whileKlarnaHolds<T>(
        _ gw: GatewayHarness, _ served: ServedGateway, milliseconds: Int, _ start: () async throws -> T
    ) async throws -> T {
        _ = try await gw.control.send(
            "POST", "/control/faults", headers: [("Content-Type", "application/json")],
            body: Array(#"{"kind":"latency","delay_ms":\#(milliseconds),"count":1}"#.utf8))
        let started = try await start()
        try await waitUntil("the call waiting on Klarna") {
            Self.value(try await served.metrics(), "kgw_upstream_connections{upstream=\"localhost:\(gw.simulator.port)\",state=\"busy\"}") >= 1
        }
        return started
    }

    @Test("a call still on a rotated-away connection at drain_seconds: the connection is closed and counted, the read retried", .timeLimit(.minutes(3)))
    func rotationDrainDeadline() async throws {
        try await withGateway { gw in
            // Klarna holds the first answer 8 s, well past the 1 s drain; the response timeout is raised above it.
            let served = try await ServedGateway.start(gw, environment: ["KGW_UPSTREAM__DRAIN_SECONDS": "1", "KGW_UPSTREAM__RESPONSE_TIMEOUT_MS": "30000"])
            let port = served.loopbackPort
            let bearer = gw.bearer("checkout")
            let slow = try await Self.whileKlarnaHolds(gw, served, milliseconds: 8000) {
                Task { () -> TestHTTPResponse in
                    let client = TestHTTPClient(port: port, tls: nil)
                    defer { Task { try? await client.close() } }
                    return try await client.send("GET", Self.transaction, headers: [bearer])
                }
            }
            let rotated = try gw.klarnaCA.issueClient(commonName: "ACQ1 acquirer rotated at a deadline")
            for partner in ["acq", "acq_live"] {
                _ = try await gw.admin.rotatePartnerCertificate(id: partner, certificatePEM: rotated.certificatePEM, clientKeyPEM: Secret(rotated.privateKeyPEM))
            }
            try await served.waitForLog("client certificate changed")

            // Cut at the deadline and counted as such; the read is sent again on a connection with the new certificate.
            let answer = try await slow.value
            #expect(answer.status == 200, "\(answer.status) \(answer.text.prefix(300))")
            let metrics = try await served.metrics()
            #expect(Self.value(metrics, "kgw_upstream_drained_connections_total{when=\"deadline\"}") >= 1, "\(metrics.split(separator: "\n").filter { $0.contains("drained") })")
            // Klarna saw the call twice: cut at the deadline, then its retry (a read may be sent again). The retry
            // still presents the certificate the call started with: a call finishes under the configuration it was
            // planned with, on a new connection that closes after it.
            let fingerprints = try await gw.received().compactMap { $0["client_certificate_fingerprint"]?.stringValue }
            #expect(fingerprints.count == 2, "Klarna saw: \(fingerprints)")
            let requestID = try #require(answer.header("Klarna-Gateway-Request-Id"))

            #expect(try await served.stop() == 0, "log:\n\(served.child.stderr.suffix(2000))")
            #expect(try LifecycleTests.records(served.auditPath).phases[requestID] == ["intent", "outcome"])
            #expect(try upstreamAttempts(auditPath: served.auditPath, requestID: requestID) == 2)
            #expect(try AuditVerifier.verify(path: served.auditPath).isIntact)
        }
    }

    @Test("SIGTERM with a call held by Klarna past shutdown_grace_seconds: the connection is closed at the grace, counted in the last warning, exit 0, the trail verifies", .timeLimit(.minutes(3)))
    func shutdownGraceDeadline() async throws {
        try await withGateway { gw in
            let served = try await ServedGateway.start(gw, environment: ["KGW_SHUTDOWN_GRACE_SECONDS": "1", "KGW_UPSTREAM__RESPONSE_TIMEOUT_MS": "60000"])
            let connection = try await RawConnection.open(port: served.loopbackPort, tls: nil)
            try await Self.whileKlarnaHolds(gw, served, milliseconds: 30000) {
                await connection.send(http1("GET", Self.transaction, [("Authorization", gw.token("checkout"))]))
            }
            served.child.kill(SIGTERM)
            let status = try await served.child.wait(timeout: .seconds(60))
            #expect(status == 0, "exit status \(status); log:\n\(served.child.stderr.suffix(2000))")
            // The caller's connection was closed at the grace, without an answer (Klarna had not given one).
            #expect(await connection.waitForClose())
            #expect(connection.received.isEmpty, "\(String(decoding: connection.received.prefix(200), as: UTF8.self))")
            let warning = served.child.stderr.split(separator: "\n").first { $0.contains("grace period over") }
            #expect(warning?.contains("\"connections\":\"1\"") == true, "no warning counting the cut connection: \(served.child.stderr.suffix(2000))")

            // The cut call was journaled before it was sent; nothing was answered, so it has no outcome record, and
            // the chain, flushed at exit, verifies.
            let phases = try LifecycleTests.records(served.auditPath).phases
            #expect(phases.values.contains(["intent"]), "audit phases: \(phases)")
            #expect(try AuditVerifier.verify(path: served.auditPath).isIntact)
            await connection.close()
        }
    }
}
