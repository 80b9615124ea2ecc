import GatewayCore
import Testing

@Suite("Request target validation")
struct RequestTargetTests {
    @Test("origin-form targets with KRNs and queries are accepted", arguments: [
        "/v2/accounts/krn:partner:global:account:test:M1/payment/requests",
        "/v2/settlements?from=2025-01-01&size=10",
        "/v2/accounts/m_1001/payment/transactions/krn:payment:eu1:transaction:6debe89e",
        "/v2/accounts/m%2D1/payment/requests",
    ])
    func accepted(_ target: String) throws {
        let parsed = try RequestTarget(parsing: target)
        #expect(!parsed.path.isEmpty)
    }

    @Test("dangerous targets are refused", arguments: [
        "http://evil.example/v2/settlements", "evil.example:443", "*", "/v2/../admin", "/v2/./settlements",
        "/v2/accounts/a%2Fb/payment", "/v2/accounts/a%5Cb", "/v2/accounts/a%00b", "/v2/accounts/krn%3Apartner",
        "/v2/accounts/%252e%252e", "/v2//settlements", "/v2\\settlements", "/v2/settlements?api_key=x",
        "/v2/settlements?token=abc", "/v2/settlements/", "/v2/sett lements", "/v2/%zz", "/v2/a%4", "/v2/a%", "/v2/a/.", "/v2/../a",
    ])
    func refused(_ target: String) {
        #expect(throws: GatewayError.self) { try RequestTarget(parsing: target) }
    }

    @Test("an overlong target is 414")
    func overlong() {
        let target = "/v2/" + String(repeating: "a", count: RequestTarget.maximumLength)
        #expect(throws: GatewayError(.uriTooLong, "The request target is longer than \(RequestTarget.maximumLength) bytes.")) {
            try RequestTarget(parsing: target)
        }
    }

    @Test("the recorded path keeps parameter names only and hides token segments")
    func recordedPath() {
        let operation = Fixtures.catalogue.operations.first { $0.template.hasSuffix("/payment/tokens/{payment_token}") }
        let path = CallRecord.recordedPath(rawTarget: "/v2/accounts/krn:partner:global:account:test:M1/payment/tokens/SECRETTOKEN?a=1&b=2", operation: operation)
        #expect(path == "/v2/accounts/krn:partner:global:account:test:M1/payment/tokens/{payment_token}?a&b")
    }
}

@Suite("Account KRNs")
struct AccountKRNTests {
    @Test("valid KRNs parse with their environment")
    func valid() throws {
        let krn = try #require(AccountKRN("krn:partner:global:account:live:ABCD1234"))
        #expect(krn.environment == .live)
        #expect(krn.accountID == "ABCD1234")
    }

    @Test("malformed KRNs are refused", arguments: [
        "krn:partner:global:account:prod:A", "krn:partner:global:account:test:", "krn:partner:global:account:test:A:B",
        "krn:payment:eu1:transaction:1", "KRN:partner:global:account:test:A", "krn:partner:global:account:test:A%2F",
        "krn:partner:global:account:test:A/B", "", "krn:partner:global:account:tesx:A", "krn:partner:global:account:lest:A",
        "krn:partner:global:account:test", "krn:partner:global:account:", "krn:partner:global:accoun",
        "krn:partner:global:account:test:" + String(repeating: "A", count: 97),
    ])
    func invalid(_ text: String) {
        #expect(AccountKRN(text) == nil)
        #expect(AccountKRN.environment(of: Substring("/" + text).dropFirst()) == nil)
    }

    @Test("the longest accepted KRN is 128 bytes, checked in place on a path's substring too")
    func longest() throws {
        let longest = "krn:partner:global:account:test:" + String(repeating: "A", count: 96)
        #expect(longest.utf8.count == 128)
        #expect(try #require(AccountKRN(longest)).accountID.count == 96)
        let path = "/v2/accounts/krn:partner:global:account:live:M_1-x/payment"
        let segment = path.split(separator: "/")[2]
        #expect(AccountKRN.environment(of: segment) == .live)
    }

    @Test("merchant ids may not look like KRNs or paths")
    func merchantIDs() {
        #expect(MerchantRecord.problem(withID: "m_1001") == nil)
        #expect(MerchantRecord.problem(withID: "krn:partner:x") != nil)
        #expect(MerchantRecord.problem(withID: "..") != nil)
        #expect(MerchantRecord.problem(withID: "a/b") != nil)
        #expect(MerchantRecord.problem(withID: "") != nil)
    }
}

@Suite("Caller tokens")
struct CallerTokenTests {
    @Test("a generated token parses back and matches its hash only")
    func roundTrip() throws {
        let token = CallerToken.generate()
        let parsed = try #require(CallerToken(parsing: Substring(token.rendered.exposedValue)))
        #expect(parsed.id == token.id)
        #expect(parsed.matches(storedHash: token.secretHash))
        #expect(!parsed.matches(storedHash: CallerToken.generate().secretHash))
    }

    @Test("a presented token is checked in place: its id's number, its secret against the stored hash, a one-bit change refused")
    func presented() throws {
        let token = CallerToken.generate()
        let presented = try #require(CallerToken.Presented(Substring(token.rendered.exposedValue)))
        #expect(presented.idNumber == UInt64(token.id, radix: 16))
        #expect(CallerToken.idNumber(token.id.utf8) == presented.idNumber)
        #expect(presented.matches(storedHash: token.secretHash))
        #expect(!presented.matches(storedHash: CallerToken.generate().secretHash))
        var flipped = Array(token.secretHash.utf8)
        flipped[63] = flipped[63] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        #expect(!presented.matches(storedHash: String(decoding: flipped, as: UTF8.self)))
        #expect(!presented.matches(storedHash: String(token.secretHash.dropLast())))
        #expect(!presented.matches(storedHash: String(repeating: "z", count: 64)))
        #expect(CallerToken.idNumber("0123456789ABCDEF".utf8) == nil)
        #expect(CallerToken.idNumber("0123456789abcde".utf8) == nil)
    }

    @Test("malformed tokens are refused", arguments: ["", "kgw_", "Bearer x", "kgw_0123456789abcdef_short", "kgw_0123456789ABCDEF_" + String(repeating: "a", count: 43)])
    func malformed(_ text: String) {
        #expect(CallerToken(parsing: Substring(text)) == nil)
        #expect(CallerToken.Presented(Substring(text)) == nil)
    }

    @Test("the token's description never shows it")
    func redacted() {
        let token = CallerToken.generate()
        #expect("\(token.rendered)" == "<redacted>")
        #expect(!String(describing: token).contains(token.secret.exposedValue))
    }
}
