import Foundation
import GatewayTestSupport
import Testing

/// Issue 8, protocol abuse over HTTP/1: old versions, odd methods, Expect, pipelining, slow and stalled clients,
/// and bytes that are not TLS at all.
@Suite("Hostile input: protocol abuse", .serialized)
struct HostileInputProtocolTests {
    static let cases: [HostileCase] = [
        HostileCase("HTTP/1.0", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))], version: "HTTP/1.0")
        },
        HostileCase("missing Host", .refusal(400, "GATEWAY_BAD_REQUEST")) { gw in
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))], host: false)
        },
        HostileCase("two Host headers", .refusal(400, "GATEWAY_BAD_REQUEST")) { gw in
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout")), ("Host", "evil.example")])
        },
        HostileCase("HTTP/0.9 style request line", .closed) { _ in Array("GET /\r\n\r\n".utf8) },
        HostileCase("HTTP/2 version in an HTTP/1 request line", .closed) { gw in
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))], version: "HTTP/2.0")
        },
        HostileCase("method the parser does not know", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("FROB", seedTransaction, [("Authorization", gw.token("checkout"))])
        },
        HostileCase("WebDAV method on a Klarna path", .refusal(404, "GATEWAY_UNKNOWN_OPERATION")) { gw in
            http1("PROPFIND", seedTransaction, [("Authorization", gw.token("checkout"))])
        },
        HostileCase("TRACE", .refusal(404, "GATEWAY_UNKNOWN_OPERATION")) { gw in
            http1("TRACE", seedTransaction, [("Authorization", gw.token("checkout"))])
        },
        HostileCase("lower-case method", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("get", seedTransaction, [("Authorization", gw.token("checkout"))])
        },
        HostileCase("Upgrade: h2c", .refusal(400, "GATEWAY_BAD_REQUEST")) { gw in
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout")), ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")])
        },
        HostileCase("TLS garbage: an HTTP request sent in clear text to the TLS port", .closed) { _ in [] },
    ]

    @Test("protocol abuse is refused, audited, and forwards nothing", arguments: cases)
    func refused(_ hostile: HostileCase) async throws {
        try await HostileGateway.exclusive { gw in
            if hostile.name.hasPrefix("TLS garbage") {
                try await Self.tlsGarbage(gw)
            } else {
                try await gw.probe(hostile)
            }
        }
    }

    /// Clear-text HTTP, then random bytes, then a TLS record with a bogus version: each only closes the connection.
    static func tlsGarbage(_ gw: GatewayHarness) async throws {
        let before = try await gw.received().count
        var generator = SystemRandomNumberGenerator()
        let inputs: [[UInt8]] = [
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))]),
            (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) },
            [0x16, 0x03, 0x09, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],
            [0x16, 0x03, 0x01, 0xFF, 0xFF] + Array(repeating: 0x41, count: 65_535),
        ]
        for input in inputs {
            let bytes = try await RawSocket.exchange(port: gw.httpsPort, tls: nil, bytes: input, readTimeout: .seconds(20))
            #expect(!String(decoding: bytes, as: UTF8.self).contains("HTTP/1.1 2"))
            // A TLS server answers garbage with at most an alert record (content type 21), never with data.
            #expect(bytes.isEmpty || bytes[0] == 0x15, "the TLS listener answered garbage with \(bytes.prefix(8))")
        }
        #expect(try await gw.received().count == before)
        try await gw.expectServes()
    }

    @Test("Expect: 100-continue on a refused request gets the refusal, never a 100 Continue, and nothing is forwarded")
    func expectContinueRefused() async throws {
        try await HostileGateway.exclusive { gw in
            let before = try await gw.received().count
            let connection = try await gw.raw()
            await connection.send(http1("POST", "/v2/accounts/m3/payment/requests", [
                ("Authorization", gw.token("checkout")), ("Content-Length", "33"), ("Expect", "100-continue"),
            ]))
            let response = try #require(await connection.response())
            #expect(response.status == 403)
            #expect(String(decoding: response.body, as: UTF8.self).contains("GATEWAY_FORBIDDEN"))
            // The caller may still send the body it announced; the connection stays usable after it.
            await connection.send(Array(#"{"currency":"EUR","amount":11800}"#.utf8))
            await connection.send(http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))]))
            #expect(await connection.response()?.status == 200)
            await connection.close()
            let requestID = try #require(response.header("klarna-gateway-request-id"))
            #expect(try await gw.auditRecords(requestID: requestID).map(\.phase) == ["refusal"])
            #expect(try await gw.received().count == before + 1)
        }
    }

    @Test("pipelined requests: the refused one is answered in its place and only the others reach Klarna")
    func pipelined() async throws {
        try await HostileGateway.exclusive { gw in
            let before = try await gw.received().count
            let connection = try await gw.raw()
            let good = http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))])
            let refused = http1("GET", "/v2/accounts/m3" + HostileInputPathTests.tail, [("Authorization", gw.token("checkout"))])
            let unauthenticated = http1("GET", seedTransaction)
            await connection.send(good + refused + good + unauthenticated + good)
            var statuses: [Int] = []
            for _ in 0..<5 { statuses.append(await connection.response()?.status ?? 0) }
            #expect(statuses == [200, 403, 200, 401, 200])
            await connection.close()
            #expect(try await gw.received().count == before + 3)
        }
    }

    @Test("a slow-loris client trickling its head is cut off by the header-read timeout with 408")
    func slowLoris() async throws {
        try await withGateway(limits: "header_read_timeout_ms: 1500") { gw in
            let refusedBefore = try await gw.refusalCount(code: "GATEWAY_REQUEST_TIMEOUT")
            let connection = try await gw.raw()
            let head = http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))])
            // One byte every 100 ms: the whole head would take far longer than the timeout.
            var sent = 0
            while sent < head.count - 2, !connection.isClosed {
                await connection.send([head[sent]])
                sent += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(sent < head.count - 2, "the gateway let the whole head trickle in")
            let response = try #require(await connection.response())
            #expect(response.status == 408)
            #expect(String(decoding: response.body, as: UTF8.self).contains("GATEWAY_REQUEST_TIMEOUT"))
            #expect(await connection.waitForClose())
            #expect(try await gw.refusalCount(code: "GATEWAY_REQUEST_TIMEOUT") == refusedBefore + 1)
            #expect(try await gw.received().isEmpty)
            try await gw.expectServes()
        }
    }

    @Test("a connection that never sends anything is closed by the header-read timeout, before or after TLS")
    func silentConnection() async throws {
        try await withGateway(limits: "header_read_timeout_ms: 1000") { gw in
            // After the handshake: the HTTP/1 head deadline answers 408.
            let tls = try await gw.raw()
            #expect(await tls.waitForClose())
            #expect(String(decoding: tls.received, as: UTF8.self).contains("408"))
            // Before the handshake: a TCP connection that never says hello is closed too.
            let tcp = try await RawConnection.open(port: gw.httpsPort, tls: nil)
            #expect(await tcp.waitForClose())
            try await gw.expectServes()
        }
    }

    @Test("a client that pipelines requests and never reads is stopped and closed; the gateway reads only a bounded amount")
    func neverReads() async throws {
        try await withGateway(limits: "idle_timeout_ms: 2000") { gw in
            let connection = try await RawConnection.open(port: gw.plainPort, tls: nil, receiveBuffer: 4096, autoRead: false)
            // 200,000 unauthenticated requests (about 10 MB) whose 401 answers (about 50 MB) are never read.
            let one = http1("GET", seedTransaction)
            let total = 200_000
            for _ in 0..<(total / 1000) { connection.sendWithoutWaiting(Array([[UInt8]](repeating: one, count: 1000).joined())) }
            // The gateway stops reading, and closes the connection once its answers have not drained for the idle
            // timeout: the client sees the reset without reading anything.
            #expect(await connection.waitForClose(timeout: .seconds(120)), "the gateway kept the stalled connection open")
            let answered = try await gw.refusalCount(code: "GATEWAY_UNAUTHENTICATED")
            #expect(answered < total / 2, "the gateway answered \(answered) of \(total) requests nobody read")
            #expect(try await gw.received().isEmpty)
            try await gw.expectServes()
        }
    }
}

extension HostileExpectation {
    var isClosed: Bool { if case .closed = self { true } else { false } }
}
