import GatewayCore
import Testing

/// The project's one JSON value: what the simulator writes and the gateway's webhook envelope reads.
@Suite("JSON value")
struct JSONValueTests {
    @Test("keys keep their order and bodies write back byte for byte; integers and other numbers stay apart")
    func orderAndNumbers() throws {
        let text = #"{"b":1,"a":[-2.5e3,0,true,null,"caf\u00e9 \ud83d\ude00"],"c":{"z":"x","y":12345678901}}"#
        let value = try JSONValue.parse(text)
        #expect(value.objectValue?.map(\.0) == ["b", "a", "c"])
        #expect(value["b"] == .int(1) && value["a"]?.arrayValue?.first == .double(-2500) && value["c"]?["y"]?.intValue == 12_345_678_901)
        #expect(value["a"]?.arrayValue?.last?.stringValue == "café 😀")
        #expect(try JSONValue.parse(value.bytes) == value)
        #expect(JSONValue(dictionaryLiteral: ("k", "v"), ("n", 2)).text == #"{"k":"v","n":2}"#)
    }

    @Test("a repeated member reads as its last value, as most receivers of a body read it; setting replaces that one")
    func repeatedMembers() throws {
        let value = try JSONValue.parse(#"{"event_id":"first","event_id":"last"}"#)
        #expect(value["event_id"]?.stringValue == "last")
        #expect(value.setting("event_id", "new").text == #"{"event_id":"first","event_id":"new"}"#)
    }

    @Test("strict: no repairs of what was signed, and depth is bounded")
    func strict() {
        let refused = [
            "", "{", "{\"a\":1,}", "[01]", "-", "1.", "1e", "{\"a\":\"\\x\"}", "\"\\ud800\"", "{\"a\":1} x", "\"\u{01}\"", "nul", "[1 2]",
        ]
        for text in refused { #expect(throws: JSONValue.ParseError.self, "\(text)") { try JSONValue.parse(text) } }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse([0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: JSONValue.maximumDepth + 1) + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(deep) }
        let allowed = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        #expect((try? JSONValue.parse(allowed)) != nil)
    }
}
