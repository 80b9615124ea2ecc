import Foundation
import GatewayTestSupport
import Testing

/// Issue 8, identity abuse: mixed, revoked and malformed credentials, and a merchant named two ways.
@Suite("Hostile input: identity abuse", .serialized)
struct HostileInputIdentityTests {
    static func get(_ authorization: @escaping @Sendable (GatewayHarness) -> String, _ extra: [(String, String)] = []) -> @Sendable (GatewayHarness) -> [UInt8] {
        { gw in http1("GET", seedTransaction, [("Authorization", authorization(gw))] + extra) }
    }

    /// A well-formed token of the right shape whose secret half is wrong.
    static func tampered(_ gw: GatewayHarness) -> String {
        let token = gw.tokens["checkout"] ?? ""
        let flipped = token.last == "A" ? "B" : "A"
        return "Bearer " + token.dropLast() + flipped
    }

    static let cases: [(HostileCase, String?)] = [
        (HostileCase("token of caller A with the certificate of caller B", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { $0.token("orders") }), "robot"),
        (HostileCase("token of a certificate-bound caller with another caller's certificate", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { $0.token("bound") }), "robot"),
        (HostileCase("token too short", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { _ in "Bearer kgw_0123" }), nil),
        (HostileCase("token too long", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { gw in gw.token("checkout") + String(repeating: "A", count: 64) }), nil),
        (HostileCase("token with the secret half tampered", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { tampered($0) }), nil),
        (HostileCase("token in standard base64 instead of URL-safe", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { gw in
            gw.token("checkout").replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+/=="
        }), nil),
        (HostileCase("token with non-ASCII bytes", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { _ in "Bearer kgw_\u{e9}\u{e9}\u{e9}" }), nil),
        (HostileCase("Basic credentials instead of a bearer token", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { _ in "Basic a2xhcm5hOnNlY3JldA==" }), nil),
        (HostileCase("a Klarna API key as the bearer token", .refusal(401, "GATEWAY_UNAUTHENTICATED"), get { _ in "Bearer \(GatewayHarness.acquirerKey)" }), nil),
        (HostileCase("merchant m2 in the header, m1 in the path", .refusal(400, "GATEWAY_BAD_REQUEST"), get({ $0.token("checkout") }, [("Klarna-Gateway-Merchant", "m2")])), nil),
        (HostileCase("merchant not granted in the header, granted one in the path", .refusal(400, "GATEWAY_BAD_REQUEST"), get({ $0.token("checkout") }, [("Klarna-Gateway-Merchant", "m3")])), nil),
        (HostileCase("unknown merchant in the header", .refusal(403, "GATEWAY_FORBIDDEN"), get({ $0.token("checkout") }, [("Klarna-Gateway-Merchant", "m1:evil")])), nil),
    ]

    @Test("identity abuse is refused, audited, and forwards nothing", arguments: cases)
    func refused(_ hostile: HostileCase, certificate: String?) async throws {
        try await HostileGateway.exclusive { gw in try await gw.probe(hostile, certificate: certificate) }
    }

    @Test("a revoked token is refused at once, over a raw connection, and nothing is forwarded")
    func revoked() async throws {
        try await withGateway { gw in
            let token = gw.token("orders")
            _ = try await gw.admin.revokeCaller(id: "orders")
            try await gw.waitForReload()
            try await gw.probe(HostileCase("revoked token", .refusal(401, "GATEWAY_UNAUTHENTICATED")) { _ in
                http1("GET", seedTransaction, [("Authorization", token)])
            })
        }
    }
}
