@testable import GatewayCore
import Testing

@Suite("Byte splitting and search")
struct ByteSplitTests {
    @Test("splitting on a byte keeps empty pieces and multi-byte characters whole, in a string and in a slice of one")
    func split() {
        #expect("/v2/accounts//x/".fastSplit(UInt8(ascii: "/")) == ["", "v2", "accounts", "", "x", ""])
        #expect("".fastSplit(UInt8(ascii: "/")) == [""])
        #expect("é/✓/𝄞".fastSplit(UInt8(ascii: "/")) == ["é", "✓", "𝄞"])
        let long = "/v2/accounts/krn:partner:global:account:test:M1/payment/transactions/krn:payment:eu1:transaction:6debe89e"
        let slice = long.dropFirst(4)
        #expect(slice.fastSplit(UInt8(ascii: "/")) == ["accounts", "krn:partner:global:account:test:M1", "payment", "transactions", "krn:payment:eu1:transaction:6debe89e"])
        #expect(long.fastSplit(UInt8(ascii: ":")).count == 10)
    }

    @Test("the first index of a byte is the one a character search finds")
    func firstIndex() {
        let target = "/v2/é/x?a=1&b=?"
        #expect(target.firstIndex(ofByte: UInt8(ascii: "?")) == target.firstIndex(of: "?"))
        #expect(target[target.firstIndex(ofByte: UInt8(ascii: "?"))!...] == "?a=1&b=?")
        #expect("/v2/x".firstIndex(ofByte: UInt8(ascii: "?")) == nil)
        #expect("".firstIndex(ofByte: UInt8(ascii: "?")) == nil)
    }
}
