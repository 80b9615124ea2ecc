import Testing
@testable import GatewayCore

/// The hand-made text helpers of the request path: request ids and header-name comparisons without copies.
@Suite("Request ids and header names")
struct HotPathTextTests {
    @Test("request ids are lower-case version-4 UUIDs, distinct")
    func requestIDs() {
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let id = RequestID.make()
            let bytes = Array(id.utf8)
            #expect(bytes.count == 36)
            #expect([8, 13, 18, 23].allSatisfy { bytes[$0] == UInt8(ascii: "-") })
            #expect(bytes[14] == UInt8(ascii: "4"))
            #expect("89ab".utf8.contains(bytes[19]))
            #expect(id.allSatisfy { "0123456789abcdef-".contains($0) })
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }

    @Test("ids made on eight threads at once, across many refills of each thread's buffer, are all distinct")
    func requestIDsAcrossThreads() async {
        let perTask = 5_000
        let all = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 { group.addTask { (0..<perTask).map { _ in RequestID.make() } } }
            return await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(all.count == 8 * perTask)
        #expect(Set(all).count == all.count)
    }

    @Test("formatting puts every bit in its place and sets version and variant")
    func format() {
        #expect(RequestID.format(high: 0, low: 0) == "00000000-0000-4000-8000-000000000000")
        #expect(RequestID.format(high: .max, low: .max) == "ffffffff-ffff-4fff-bfff-ffffffffffff")
        #expect(RequestID.format(high: 0x0123_4567_89ab_cdef, low: 0x0123_4567_89ab_cdef) == "01234567-89ab-4def-8123-456789abcdef")
    }

    @Test("header names compare ignoring ASCII case, without a lower-cased copy when none is needed")
    func headerNames() {
        #expect(ASCIICase.equals("Transfer-Encoding", lowercase: "transfer-encoding"))
        #expect(!ASCIICase.equals("Transfer-Encodings", lowercase: "transfer-encoding"))
        #expect(!ASCIICase.equals("te", lowercase: "tf"))
        #expect(ASCIICase.hasPrefix("Klarna-Gateway-Merchant", lowercase: "klarna-gateway-"))
        #expect(ASCIICase.hasPrefix("klarna-gateway-", lowercase: "klarna-gateway-"))
        #expect(!ASCIICase.hasPrefix("Klarna-Gateway", lowercase: "klarna-gateway-"))
        #expect(!ASCIICase.hasPrefix("Klarna-Idempotency-Key", lowercase: "klarna-gateway-"))
        #expect(ASCIICase.lowercased("Content-Type") == "content-type")
        #expect(ASCIICase.lowercased("content-type") == "content-type")
        for name in ["Connection", "keep-alive", "Transfer-Encoding", "UPGRADE", "Proxy-Connection", "TE", "Trailer"] {
            #expect(HopByHop.isResponseHopByHop(name), "\(name)")
        }
        for name in ["Content-Type", "Content-Length", "Klarna-Correlation-Id", "Te2", "Trailers", "x"] {
            #expect(!HopByHop.isResponseHopByHop(name), "\(name)")
        }
    }
}

@Suite("Token alphabet check")
struct TokenAlphabetTests {
    @Test("the range check accepts exactly the URL-safe base64 alphabet, for every byte")
    func everyByte() {
        for byte in UInt8.min...UInt8.max {
            #expect(Base64URL.isAlphabetByte(byte) == Base64URL.alphabet.contains(byte), "byte \(byte)")
        }
    }
}
