import Foundation
import GatewayTestSupport
import Testing

/// Connections the gateway ends before any call (bad TLS, malformed HTTP) show in `/metrics` by reason, and the
/// refusals answered at the connection level are counted by gateway error code like every other refusal.
@Suite("Connection refusals in /metrics")
struct ConnectionRefusalMetricsTests {
    @Test("a failed TLS handshake and a malformed request are counted by reason; the 400 is counted by code", .timeLimit(.minutes(3)))
    func countedByReason() async throws {
        try await withGateway { gw in
            let served = try await ServedGateway.start(gw)
            // Plain text to the TLS listener: the handshake fails.
            let notTLS = try await RawConnection.open(port: try #require(served.ports["https"]), tls: nil)
            await notTLS.send(http1("GET", seedTransaction))
            #expect(await notTLS.waitForClose(), "the TLS listener kept a connection that is not TLS")
            // Malformed HTTP/1 on the loopback listener: 400, then closed.
            let malformed = try await RawConnection.open(port: served.loopbackPort, tls: nil)
            await malformed.send("GET /v2/x HTTP/1.1\r\nHost: localhost\r\nBad Header Line\r\n\r\n")
            let answer = await malformed.response()
            #expect(answer?.status == 400)
            #expect(await malformed.waitForClose())

            let text = try await served.metrics()
            for series in [
                "kgw_ingress_connections_refused_total{reason=\"tls_handshake_failed\"} 1",
                "kgw_ingress_connections_refused_total{reason=\"malformed_request\"} 1",
                "kgw_ingress_connections_refused_total{reason=\"connection_limit\"} 0",
                "kgw_ingress_connections_refused_total{reason=\"tls_handshake_timeout\"} 0",
                "kgw_gateway_errors_total{code=\"GATEWAY_BAD_REQUEST\"} 1",
                "kgw_log_lines_dropped_total 0",
            ] {
                #expect(text.contains(series), "missing \(series) in:\n\(text)")
            }
            _ = try await served.stop()
        }
    }
}
