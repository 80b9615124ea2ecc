import Foundation
import GatewayTestSupport
import Testing

/// Issue 8, header abuse: control bytes, repeated identity headers and oversize heads are refused before anything
/// is forwarded.
@Suite("Hostile input: header abuse", .serialized)
struct HostileInputHeaderTests {
    static func get(_ gw: GatewayHarness, _ extra: [(String, String)]) -> [UInt8] {
        http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))] + extra)
    }

    static let cases: [HostileCase] = [
        HostileCase("CR inside a header value", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in get(gw, [("X-Custom", "a\rb")]) },
        HostileCase("bare LF inside a header value", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            get(gw, [("X-Custom", "a\nKlarna-Gateway-Merchant: m2")])
        },
        HostileCase("NUL inside a header value", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in get(gw, [("X-Custom", "a\u{0}b")]) },
        HostileCase("NUL inside a header name", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in get(gw, [("X-Cus\u{0}tom", "a")]) },
        HostileCase("CR inside a header name", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in get(gw, [("X-Cus\rtom", "a")]) },
        HostileCase("space before the colon", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in get(gw, [("Authorization ", "x")]) },
        HostileCase("two Klarna-Gateway-Merchant headers", .refusal(400, "GATEWAY_BAD_REQUEST")) { gw in
            get(gw, [("Klarna-Gateway-Merchant", "m1"), ("Klarna-Gateway-Merchant", "m2")])
        },
        HostileCase("two Authorization headers", .refusal(400, "GATEWAY_BAD_REQUEST")) { gw in
            http1("GET", seedTransaction, [("Authorization", gw.token("checkout")), ("Authorization", gw.token("orders"))])
        },
        HostileCase("one header over 6 KB", .refusal(431, "GATEWAY_HEADERS_TOO_LARGE")) { gw in
            get(gw, [("X-Custom", String(repeating: "a", count: 7000))])
        },
        HostileCase("headers over 20 KB in all", .refusal(431, "GATEWAY_HEADERS_TOO_LARGE")) { gw in
            get(gw, (1...5).map { ("X-Pad-\($0)", String(repeating: "b", count: 5000)) })
        },
        HostileCase("a head over the parser's 80 KB", .refusal(431, "GATEWAY_HEADERS_TOO_LARGE", closes: true)) { gw in
            get(gw, (1...20).map { ("X-Pad-\($0)", String(repeating: "c", count: 5000)) })
        },
        HostileCase("five thousand small headers", .refusal(431, "GATEWAY_HEADERS_TOO_LARGE")) { gw in
            get(gw, (1...5000).map { ("X-\($0)", "1") })
        },
    ]

    @Test("header abuse is refused, audited, and forwards nothing", arguments: cases)
    func refused(_ hostile: HostileCase) async throws {
        try await HostileGateway.exclusive { gw in try await gw.probe(hostile) }
    }
}
