import Foundation
import GatewayTestSupport
import Testing

/// Issue 8, request smuggling: framing the gateway and Klarna could read differently is refused, never forwarded.
@Suite("Hostile input: request smuggling", .serialized)
struct HostileInputSmugglingTests {
    static let create = "/v2/accounts/m1/payment/requests"
    static let body = #"{"currency":"EUR","amount":11800}"#

    static let cases: [HostileCase] = [
        HostileCase("Content-Length and Transfer-Encoding together", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                  body: Array("0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        },
        HostileCase("two different Content-Lengths", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("Content-Length", "5"), ("Content-Length", "33")], body: Array(body.utf8))
        },
        HostileCase("Content-Length with a sign", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("Content-Length", "+33")], body: Array(body.utf8))
        },
        HostileCase("Transfer-Encoding other than chunked", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("Transfer-Encoding", "gzip, chunked, identity")], body: Array("0\r\n\r\n".utf8))
        },
        HostileCase("invalid chunk size", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("Transfer-Encoding", "chunked")], body: Array("zz\r\n\(body)\r\n0\r\n\r\n".utf8))
        },
        HostileCase("chunk size overflowing 64 bits", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("Transfer-Encoding", "chunked")],
                  body: Array("1000000000000000000000021\r\n\(body)\r\n0\r\n\r\n".utf8))
        },
        HostileCase("obsolete line folding", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("POST", create, [("Authorization", gw.token("checkout")), ("X-Custom", "a\r\n folded"), ("Content-Length", "33")], body: Array(body.utf8))
        },
    ]

    @Test("smuggling attempts are refused with 400, audited, close the connection, and forward nothing", arguments: cases)
    func refused(_ hostile: HostileCase) async throws {
        try await HostileGateway.exclusive { gw in try await gw.probe(hostile) }
    }

    @Test("a body shorter than declared is cut off by the body timeout with 408 and never completes at Klarna")
    func shorterBody() async throws {
        try await withGateway(limits: "idle_timeout_ms: 1500") { gw in
            let connection = try await gw.raw()
            await connection.send(http1("POST", Self.create, [("Authorization", gw.token("checkout")), ("Content-Length", "100")], body: Array(Self.body.utf8)))
            let response = try #require(await connection.response())
            #expect(response.status == 408)
            #expect(response.header("connection") == "close")
            let requestID = try #require(response.header("klarna-gateway-request-id"))
            #expect(String(decoding: response.body, as: UTF8.self).contains("GATEWAY_REQUEST_TIMEOUT"))
            #expect(await connection.waitForClose())
            #expect(try await gw.auditRecords(requestID: requestID).last?.code == "GATEWAY_REQUEST_TIMEOUT")
            #expect(try await gw.received().isEmpty)
            try await gw.expectServes()
        }
    }

    @Test("a body longer than declared: Klarna gets exactly the declared bytes, the excess is refused as a request of its own")
    func longerBody() async throws {
        try await HostileGateway.exclusive { gw in
            let before = try await gw.received().count
            let connection = try await gw.raw()
            await connection.send(http1(
                "POST", Self.create, [("Authorization", gw.token("checkout")), ("Content-Type", "application/json"), ("Content-Length", String(Self.body.utf8.count))],
                body: Array((Self.body + "SMUGGLED / HTTP/1.1\r\nHost: x\r\n\r\n").utf8)))
            let first = try #require(await connection.response())
            #expect(first.status == 201)
            let second = try #require(await connection.response())
            #expect(second.status == 400)
            #expect(String(decoding: second.body, as: UTF8.self).contains("GATEWAY_BAD_REQUEST"))
            #expect(await connection.waitForClose())
            let received = try await gw.received()
            #expect(received.count == before + 1)
            #expect(received.last?["body_size"]?.intValue == Self.body.utf8.count)
            try await gw.expectServes()
        }
    }
}
