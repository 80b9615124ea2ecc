import GatewayCore
import Testing

@Suite("Constant-time comparison")
struct ConstantTimeTests {
    @Test("equal only for the same bytes: a difference anywhere, or another length, is unequal")
    func equality() {
        let token = "kgw_0123456789abcdef_" + String(repeating: "Ab-_", count: 10) + "xyz"
        #expect(ConstantTime.equal(token.utf8, String(token).utf8))
        #expect(ConstantTime.equal("".utf8, "".utf8))
        for index in [0, 20, token.utf8.count - 1] {
            var bytes = Array(token.utf8)
            bytes[index] ^= 0x01
            #expect(!ConstantTime.equal(token.utf8, String(decoding: bytes, as: UTF8.self).utf8), "byte \(index)")
        }
        #expect(!ConstantTime.equal(token.utf8, String(token.dropLast()).utf8))
        // Byte equality, not Unicode equivalence: "é" precomposed and decomposed are different bytes.
        #expect(!ConstantTime.equal("\u{E9}".utf8, "e\u{301}".utf8))
    }
}
