import GatewayCore
import Testing

/// The head checks the ingress applies before any stage, without sockets (the end-to-end twins are the
/// hostile-input suites).
@Suite("Ingress head check")
struct IngressHeadCheckTests {
    let check = IngressHeadCheck(maxHeaderBytes: 6144, maxHeadersTotalBytes: 20480, maxBodyBytes: 1_048_576)

    func code(_ headers: [(String, String)], major: Int = 1, minor: Int = 1, http2: Bool = false) -> GatewayError.Code? {
        check.refusal(method: "GET", versionMajor: major, versionMinor: minor, isHTTP2: http2, headers: HeaderList(headers))?.code
    }

    @Test("a plain HTTP/1.1 head passes; HTTP/2 needs no Host")
    func passes() {
        #expect(code([("Host", "a"), ("Content-Length", "1048576")]) == nil)
        #expect(code([], major: 2, minor: 0, http2: true) == nil)
    }

    @Test("HTTP/1.0, a missing or doubled Host, an upgrade are refused with 400")
    func protocolRules() {
        #expect(code([("Host", "a")], minor: 0) == .badRequest)
        #expect(code([]) == .badRequest)
        #expect(code([("Host", "a"), ("host", "b")]) == .badRequest)
        #expect(code([("Host", "a"), ("Upgrade", "h2c")]) == .badRequest)
    }

    @Test("Content-Length must be one run of digits, at most the body limit",
          arguments: [("+5", GatewayError.Code.badRequest), ("-1", .badRequest), ("5 ", .badRequest), ("0x10", .badRequest), ("", .badRequest),
                      ("1048577", .payloadTooLarge), ("99999999999999999999999", .payloadTooLarge)])
    func contentLength(_ value: String, _ expected: GatewayError.Code) {
        #expect(code([("Host", "a"), ("Content-Length", value)]) == expected)
        #expect(code([("Host", "a"), ("Content-Length", "5"), ("Content-Length", "5")]) == .badRequest)
    }

    @Test("one header over the single limit, or all of them over the total, is 431")
    func sizes() {
        #expect(code([("Host", "a"), ("X", String(repeating: "a", count: 6141))]) == .headersTooLarge)
        #expect(code([("Host", "a"), ("X", String(repeating: "a", count: 6139))]) == nil)
        #expect(code([("Host", "a")] + (1...4).map { ("X\($0)", String(repeating: "a", count: 6000)) }) == .headersTooLarge)
    }
}
