import GatewayCore
import Testing

@Suite("JSON text")
struct JSONTextTests {
    @Test("a string that needs no escape is copied whole; one that does is escaped wherever the byte sits")
    func quoting() {
        #expect(JSONText.quote("") == #""""#)
        #expect(JSONText.quote("m1") == #""m1""#)
        let krn = "krn:partner:global:account:test:M12345"
        #expect(JSONText.quote(krn) == "\"" + krn + "\"")
        #expect(JSONText.quote(krn + "\n") == "\"" + krn + #"\n""#)
        #expect(JSONText.quote("\"" + krn) == #""\""# + krn + "\"")
        #expect(JSONText.quote("a\\b\tc\r\u{01}é") == #""a\\b\tc\r\u0001é""#)
    }

    @Test("what it writes parses back to the same string")
    func roundTrip() throws {
        let samples = ["", "plain", "krn:partner:global:account:live:ABCDEFGH", "tab\there", "quote\"and\\slash",
                       "control \u{00}\u{1F} end", "unicode é ✓ 𝄞", String(repeating: "x", count: 300) + "\u{7}"]
        for sample in samples {
            var bytes: [UInt8] = []
            JSONText.appendQuoted(sample, to: &bytes)
            #expect(try JSONValue.parse(bytes) == .string(sample), "\(sample)")
        }
    }
}
