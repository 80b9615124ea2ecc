import Foundation
import GatewayTestSupport
import Testing

/// Issue 8, path abuse: the gateway forwards exactly the path it authorised, so anything that could be read two
/// ways is refused rather than normalised.
@Suite("Hostile input: path abuse", .serialized)
struct HostileInputPathTests {
    static let tail = "/payment/transactions/krn:payment:eu1:transaction:seed-M1"

    static func get(_ target: String, caller: String = "checkout") -> @Sendable (GatewayHarness) -> [UInt8] {
        { gw in http1("GET", target, [("Authorization", gw.token(caller))]) }
    }

    static let cases: [HostileCase] = [
        HostileCase("'..' segment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m3/../m1" + tail)),
        HostileCase("'.' segment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1/." + tail)),
        HostileCase("percent-encoded '..'", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m3/%2e%2e/m1" + tail)),
        HostileCase("percent-encoded '/'", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1%2Fpayment" + tail)),
        HostileCase("backslash", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1\\..\\m3" + tail)),
        HostileCase("encoded backslash", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1%5C..%5Cm3" + tail)),
        HostileCase("%00 in the account segment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1%00" + tail)),
        HostileCase("':' in the account segment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1:m3" + tail)),
        HostileCase("encoded ':' in a KRN", .refusal(400, "GATEWAY_BAD_REQUEST"),
                    get("/v2/accounts/krn%3Apartner%3Aglobal%3Aaccount%3Atest%3AM1" + tail)),
        HostileCase("double encoding", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/m1%252F..%252Fm3" + tail)),
        HostileCase("KRN of the wrong shape", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/krn:partner:global:account:test" + tail)),
        HostileCase("KRN with an extra segment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/krn:partner:global:account:test:M1:M3" + tail)),
        HostileCase("KRN of an unknown environment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts/krn:partner:global:account:staging:M1" + tail)),
        HostileCase("KRN naming the live twin of a test account", .refusal(403, "GATEWAY_FORBIDDEN"),
                    get("/v2/accounts/krn:partner:global:account:live:M1" + tail, caller: "tester")),
        HostileCase("absolute-form target", .refusal(400, "GATEWAY_BAD_REQUEST"), get("https://api-global.test.klarna.com/v2/accounts/m1" + tail)),
        // RFC 9110 9.3.6 forbids a body only in a 2xx answer to CONNECT: the refusal carries its JSON like any other.
        HostileCase("authority-form target (CONNECT)", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true)) { gw in
            http1("CONNECT", "api-global.test.klarna.com:443", [("Authorization", gw.token("checkout"))])
        },
        HostileCase("asterisk-form target", .refusal(400, "GATEWAY_BAD_REQUEST")) { gw in
            http1("OPTIONS", "*", [("Authorization", gw.token("checkout"))])
        },
        HostileCase("overlong URL", .refusal(414, "GATEWAY_URI_TOO_LONG"), get(seedTransaction + "?pad=" + String(repeating: "a", count: 5000))),
        HostileCase("fragment in the target", .refusal(400, "GATEWAY_BAD_REQUEST"), get(seedTransaction + "#x")),
        HostileCase("api_key in the query string", .refusal(400, "GATEWAY_BAD_REQUEST"), get(seedTransaction + "?api_key=klarna_test_api_abc")),
        HostileCase("token in the query string", .refusal(400, "GATEWAY_BAD_REQUEST"), get(seedTransaction + "?expand=x&Token=kgw_abc")),
        HostileCase("empty segment", .refusal(400, "GATEWAY_BAD_REQUEST"), get("/v2/accounts//m1" + tail)),
        HostileCase("non-ASCII byte in the path", .refusal(400, "GATEWAY_BAD_REQUEST", closes: true), get("/v2/accounts/m\u{e9}1" + tail)),
    ]

    @Test("path abuse is refused, audited, and forwards nothing", arguments: cases)
    func refused(_ hostile: HostileCase) async throws {
        try await HostileGateway.exclusive { gw in try await gw.probe(hostile) }
    }
}
