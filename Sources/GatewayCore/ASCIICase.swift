/// ASCII case handling for header names without a new String per comparison: header names are ASCII, and most
/// arrive already lower-case (HTTP/2 always), so the common case needs no copy at all.
public enum ASCIICase {
    /// `text` itself when it has no upper-case ASCII letter, else its lower-cased copy.
    @inlinable
    public static func lowercased(_ text: String) -> String {
        for byte in text.utf8 where byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { return text.lowercased() }
        return text
    }

    /// Whether `text` equals `lowercase` (which must be lower-case ASCII) ignoring ASCII case.
    @inlinable
    public static func equals(_ text: String, lowercase: StaticString) -> Bool {
        text.utf8.count == lowercase.utf8CodeUnitCount && hasPrefix(text, lowercase: lowercase)
    }

    /// Whether `text` equals `lowercaseName` (lower-case ASCII) ignoring ASCII case.
    @inlinable
    public static func equals(_ text: String, lowercaseName: String) -> Bool {
        guard text.utf8.count == lowercaseName.utf8.count else { return false }
        var name = lowercaseName
        return name.withUTF8 { hasPrefix(text, expected: $0) }
    }

    /// Whether `text` starts with `lowercase` (lower-case ASCII) ignoring ASCII case.
    @inlinable
    public static func hasPrefix(_ text: String, lowercase: StaticString) -> Bool {
        hasPrefix(text, expected: UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount))
    }

    /// The one comparison the others share: `text`'s bytes, upper-case ASCII folded, start with `expected`.
    @inlinable
    static func hasPrefix(_ text: String, expected: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        for byte in text.utf8 {
            if index == expected.count { return true }
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            if folded != expected[index] { return false }
            index += 1
        }
        return index == expected.count
    }
}

/// Hop-by-hop headers of a response: they describe Klarna's connection to the gateway, not the caller's.
public enum HopByHop {
    /// Whether a response header named `name` stays on its own hop.
    @inlinable
    public static func isResponseHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return ASCIICase.equals(name, lowercase: "te")
        case 7: return ASCIICase.equals(name, lowercase: "upgrade") || ASCIICase.equals(name, lowercase: "trailer")
        case 10: return ASCIICase.equals(name, lowercase: "connection") || ASCIICase.equals(name, lowercase: "keep-alive")
        case 16: return ASCIICase.equals(name, lowercase: "proxy-connection")
        case 17: return ASCIICase.equals(name, lowercase: "transfer-encoding")
        default: return false
        }
    }
}
