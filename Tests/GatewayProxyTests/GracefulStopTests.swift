import Foundation
import GatewayTestSupport
import Testing

/// SIGTERM while connections are open but silent: a request that arrives after the stop began, on a connection the
/// gateway had already accepted, is answered (with `Connection: close`); new connections are refused.
@Suite("Graceful stop")
struct GracefulStopTests {
    @Test("idle keep-alive and fresh connections accepted before SIGTERM still get their request answered", .timeLimit(.minutes(3)))
    func acceptedConnectionsAreServed() async throws {
        try await withGateway { gw in
            let served = try await ServedGateway.start(gw)
            let port = served.loopbackPort
            let request = http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))])
            // A keep-alive connection that has been answered once and sits idle.
            let keepAlive = try await RawConnection.open(port: port, tls: nil)
            await keepAlive.send(request)
            #expect(await keepAlive.response()?.status == 200)
            // A fresh connection that has said nothing yet, over TLS.
            let fresh = try await RawConnection.open(port: try #require(served.ports["https"]), tls: gw.rawTLS())
            try await Task.sleep(for: .milliseconds(300))

            served.child.kill(SIGTERM)
            // The stop has begun (the listener closes first) before either request is sent.
            var refused = false
            for _ in 0..<50 where !refused {
                try await Task.sleep(for: .milliseconds(20))
                refused = (try? await RawConnection.open(port: port, tls: nil)) == nil
            }
            #expect(refused, "the listener still accepted connections after SIGTERM")

            await keepAlive.send(request)
            await fresh.send(request)
            for (name, connection) in [("keep-alive", keepAlive), ("fresh", fresh)] {
                let response = await connection.response()
                #expect(response?.status == 200, "\(name) connection: no answer after the stop began")
                #expect(response?.header("connection")?.lowercased() == "close", "\(name) connection: answer lacks Connection: close")
                #expect(await connection.waitForClose(), "\(name) connection was not closed after its answer")
            }
            let status = try await served.child.wait(timeout: .seconds(90))
            #expect(status == 0, "exit status \(status); log:\n\(served.child.stderr.suffix(2000))")
        }
    }
}
