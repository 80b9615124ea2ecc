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
        // Through a pointer where the bytes are contiguous (a native string's are): the UTF-8 view's iterator
        // checks its position per byte, and every header of every request is compared this way.
        text.utf8.withBytes { bytes in
            guard bytes.count >= expected.count else { return false }
            for index in 0..<expected.count where folded(bytes[index]) != expected[index] { return false }
            return true
        }
    }

    /// `byte` with upper-case ASCII made lower-case.
    @inlinable
    static func folded(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
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
