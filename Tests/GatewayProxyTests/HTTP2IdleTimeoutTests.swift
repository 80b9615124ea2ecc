import Foundation
import GatewayTestSupport
import Testing

/// Issue 16: an HTTP/2 connection with no open stream for `limits.idle_timeout_ms` gets GOAWAY `NO_ERROR` and is
/// closed, as an idle HTTP/1.1 keep-alive connection is; a stream still open keeps the connection.
@Suite("HTTP/2 idle timeout")
struct HTTP2IdleTimeoutTests {
    typealias H2 = HostileInputHTTP2Tests

    /// A GET's header block with a bearer token (a literal header field without indexing, new name).
    static func authorizedGet(path: String, token: String) -> [UInt8] {
        let value = "Bearer \(token)"
        return H2.getHeaderBlock(path: path) + [0x00, UInt8("authorization".utf8.count)] + Array("authorization".utf8)
            + [UInt8(value.utf8.count)] + Array(value.utf8)
    }

    /// A new connection whose one stream reads the seeded transaction, and what its answer's body was once it ended,
    /// the connection closed, or 30 s passed.
    static func slowStream(_ gw: GatewayHarness, token: String) async throws -> (RawConnection, String) {
        let connection = try await RawConnection.open(port: gw.httpsPort, tls: gw.rawTLS(alpn: ["h2"]))
        await connection.send(H2.preface + H2.frame(type: 0x04) + H2.frame(type: 0x04, flags: 0x01)
            + H2.frame(type: 0x01, flags: 0x05, stream: 1, payload: authorizedGet(path: seedTransaction, token: token)))
        // Read after each wait, not before it: a task the full suite keeps off the CPU can sleep through the answer
        // and the idle close after it, and a body read before that sleep would miss an answer that came.
        func body() -> String {
            H2.frames(in: connection.received).filter { $0.type == 0x00 }.map { String(decoding: $0.payload, as: UTF8.self) }.joined()
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while !body().contains("}") && !connection.isClosed && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        return (connection, body())
    }

    @Test("an answered stream, then silence: GOAWAY NO_ERROR and the connection closes; a slow stream is not cut", .timeLimit(.minutes(2)))
    func idleConnectionIsClosed() async throws {
        try await withGateway(limits: "idle_timeout_ms: 2500") { gw in
            // Klarna answers after 6 s: the stream stays open longer than the idle timeout, and must get its answer.
            // (The timeout leaves the stream 2.5 s to open: with 1 s, a loaded machine sometimes took longer between
            // the handshake and the stream, and the idle connection was rightly closed before it.)
            _ = try await gw.control.send(
                "POST", "/control/faults", headers: [("Content-Type", "application/json")],
                body: Array(#"{"kind": "latency", "delay_ms": 6000, "count": 1}"#.utf8))
            let token = try #require(gw.tokens["checkout"])
            var (connection, body) = try await Self.slowStream(gw, token: token)
            // The stream goes with the preface, yet a machine starved by the full suite once held it past the idle
            // timeout, which then rightly closed a connection with no stream (its GOAWAY names stream 0): opened again.
            for _ in 1..<3 where body.isEmpty && connection.isClosed && H2.goAway(in: connection.received)?.lastStream == 0 {
                await connection.close()
                (connection, body) = try await Self.slowStream(gw, token: token)
            }
            let frames = H2.frames(in: connection.received)
            #expect(
                body.contains("seed-M1"),
                "the slow stream got no answer: \(body.prefix(200)); closed \(connection.isClosed), frames \(frames.map(\.type)), GOAWAY \(String(describing: H2.goAway(in: connection.received)))")
            // The idle timeout runs from the answer's end, so a GOAWAY may be here already when this task, kept off
            // the CPU by the full suite, looks late: read by order, not by time, it must follow the answer's last frame.
            if let goAway = frames.firstIndex(where: { $0.type == 0x07 }) {
                #expect(goAway > (frames.lastIndex(where: { $0.type == 0x00 }) ?? -1), "GOAWAY while a stream was open")
            }

            // Silence: no stream open, so the idle timeout ends the connection, politely.
            #expect(await connection.waitForClose(timeout: .seconds(30)), "the idle HTTP/2 connection was left open")
            #expect(H2.goAwayCode(in: connection.received) == 0, "frames: \(H2.frames(in: connection.received).map(\.type))")
            await connection.close()
            try await gw.expectServes()
        }
    }
}
