import Foundation
import GatewayAudit
import GatewayTestSupport
import NIOConcurrencyHelpers
import Testing

/// SIGTERM while connections are open but silent: a request that arrives after the stop began, on a connection the
/// gateway had already accepted, is answered (with `Connection: close`); new connections are refused.
@Suite("Graceful stop", .serialized)
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

    /// What the clients of the new-connection load saw.
    struct Tally: Sendable {
        var answered: [String] = []
        /// Answers sent with `Connection: close`: served while the gateway was stopping.
        var answeredWhileStopping = 0
        /// Connections accepted (their TLS handshake complete) whose request got no answer.
        var lost: [String] = []
        /// Connections that never completed TLS (reset while in the listener's backlog at the stop).
        var neverAccepted = 0
        var refusedAfterStop = 0
        var otherErrors: [String] = []
    }

    /// Issue 16. A real SIGTERM to the served binary: `serve` runs the service group's graceful shutdown, which ends
    /// in `GatewayService.shutdown` (stop accepting, quiesce every connection, flush the audit trail).
    @Test("under a load of new TLS connections, one request each, SIGTERM: every request written on an accepted connection is answered, exit 0, audit flushed", .timeLimit(.minutes(3)))
    func newConnectionLoadIsServed() async throws {
        try await withGateway { gw in
            let served = try await ServedGateway.start(gw)
            let port = try #require(served.ports["https"])
            let request = http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))])
            let tls = gw.rawTLS()
            let tally = NIOLockedValueBox(Tally())
            let stopping = NIOLockedValueBox(false)
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<12 {
                        group.addTask {
                            for _ in 0..<5_000 {
                                let connection: RawConnection
                                do {
                                    connection = try await RawConnection.open(port: port, tls: tls)
                                } catch {
                                    // Refused once the listener is closed: what a stopping gateway must answer. The flag
                                    // is set before the signal is sent, so it is read after the failure.
                                    let stopped = stopping.withLockedValue { $0 }
                                    tally.withLockedValue { if stopped { $0.refusedAfterStop += 1 } else { $0.otherErrors.append("\(error)") } }
                                    if stopped { return }
                                    continue
                                }
                                // A client that connects, then sends its request a moment after the handshake (as
                                // one preparing it would): at the stop, some connections are in that moment.
                                while !connection.handshakeCompleted && !connection.isClosed {
                                    try? await Task.sleep(for: .milliseconds(2))
                                }
                                guard connection.handshakeCompleted else {
                                    tally.withLockedValue { $0.neverAccepted += 1 }
                                    await connection.close()
                                    continue
                                }
                                try? await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
                                guard await connection.send(request) else {
                                    tally.withLockedValue { $0.lost.append("closed before the request could be written") }
                                    await connection.close()
                                    continue
                                }
                                let response = await connection.response()
                                tally.withLockedValue {
                                    if let response, let id = response.header("klarna-gateway-request-id"), response.status == 200 {
                                        $0.answered.append(id)
                                        if response.header("connection")?.lowercased() == "close" { $0.answeredWhileStopping += 1 }
                                    } else if let response {
                                        $0.otherErrors.append("status \(response.status)")
                                    } else {
                                        $0.lost.append(connection.isClosed ? "closed without an answer" : "no answer in time")
                                    }
                                }
                                await connection.close()
                            }
                        }
                    }
                }
            }
            try await waitUntil("calls flowing on new connections") { tally.withLockedValue { $0.answered.count } >= 60 }
            stopping.withLockedValue { $0 = true }
            served.child.kill(SIGTERM)
            let status = try await served.child.wait(timeout: .seconds(90))
            await load.value
            let seen = tally.withLockedValue { $0 }
            print("new-connection load at SIGTERM: \(seen.answered.count) answered (\(seen.answeredWhileStopping) while stopping), "
                + "\(seen.lost.count) lost, \(seen.neverAccepted) never accepted, \(seen.refusedAfterStop) refused after the stop")
            #expect(status == 0, "exit status \(status); log:\n\(served.child.stderr.suffix(2000))")
            #expect(seen.lost.isEmpty, "requests on accepted connections got no answer: \(seen.lost.prefix(5))")
            #expect(seen.otherErrors.isEmpty, "\(seen.otherErrors.prefix(5))")
            // The audit trail was flushed at exit: every answered call has both records, and the chain verifies.
            let phases = try LifecycleTests.records(served.auditPath).phases
            for id in seen.answered {
                #expect(phases[id] == ["intent", "outcome"], "request \(id) was answered but its records are \(phases[id] ?? [])")
            }
            #expect(try AuditVerifier.verify(path: served.auditPath).isIntact)
        }
    }
}
