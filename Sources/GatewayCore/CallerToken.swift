import Crypto

/// A caller's bearer token: `kgw_<token id>_<secret>`.
///
/// The id finds the caller's stored hash without scanning; the secret is compared in constant time against
/// that hash. Tokens are 256-bit random, so a plain SHA-256 is enough (a slow KDF protects guessable passwords,
/// not random keys) and keeps the check to about a microsecond on the hot path.
public struct CallerToken: Sendable {
    /// The public id half (16 lowercase hex characters).
    public let id: String
    /// The secret half.
    public let secret: Secret

    /// The token as the caller sends it.
    public var rendered: Secret { Secret("kgw_\(id)_\(secret.exposedValue)") }

    /// Lowercase hex SHA-256 of the secret half: what the store keeps.
    public var secretHash: String { CallerToken.hash(secret.exposedValue) }

    /// A new random token.
    public static func generate() -> CallerToken {
        var rng = SystemRandomNumberGenerator()
        let idBytes = (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let secretBytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return CallerToken(id: Hex.encode(idBytes), secret: Secret(Base64URL.encode(secretBytes)))
    }

    private init(id: String, secret: Secret) {
        self.id = id
        self.secret = secret
    }

    /// Parses a presented token; nil for anything not of the exact shape (wrong prefix, length or alphabet).
    public init?(parsing text: Substring) {
        guard let presented = Presented(text) else { return nil }
        self.id = String(presented.id)
        self.secret = Secret(String(presented.secret))
    }

    /// A token as presented, read in place: checking it copies neither half (the request path's form).
    public struct Presented {
        /// The id half, 16 lowercase hex digits.
        let id: Substring
        /// The secret half.
        let secret: Substring

        /// Parses `kgw_<id>_<secret>`; nil for anything not of the exact shape (wrong prefix, length or alphabet).
        public init?(_ text: Substring) {
            // On the UTF-8 bytes, through a pointer where they are contiguous (a native string's are): every valid
            // token is ASCII, Character steps would walk grapheme clusters, and a substring's index steps check
            // their bounds per byte.
            let bytes = text.utf8
            guard bytes.count == Self.length,
                bytes.withBytes(Self.isWellFormed)
            else { return nil }
            let idStart = bytes.index(bytes.startIndex, offsetBy: 4)
            let idEnd = bytes.index(idStart, offsetBy: 16)
            id = text[idStart..<idEnd]
            secret = text[bytes.index(after: idEnd)...]
        }

        /// `kgw_`, the id, `_`, the secret.
        static let length = 4 + 16 + 1 + 43

        /// Whether `length` bytes have the token's shape.
        private static func isWellFormed(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            bytes.count == length && bytes[0] == UInt8(ascii: "k") && bytes[1] == UInt8(ascii: "g") && bytes[2] == UInt8(ascii: "w")
                && bytes[3] == UInt8(ascii: "_") && bytes[20] == UInt8(ascii: "_")
                && bytes[4..<20].allSatisfy(Hex.isLowerHexDigit) && bytes[21...].allSatisfy(Base64URL.isAlphabetByte)
        }

        /// The number the id's hex digits spell: the key the snapshot finds the caller by.
        public var idNumber: UInt64 { CallerToken.idNumber(id.utf8)! }

        /// True when the secret hashes to `storedHash` (lowercase hex); every byte is compared whatever the first
        /// mismatch, and the digest is compared as bytes, not rendered as hex.
        public func matches(storedHash: String) -> Bool {
            var secret = secret
            let digest = secret.withUTF8 { SHA256.hash(data: $0) }
            var stored = storedHash
            // Both read in place: iterating the digest copies its bytes into an array first, and stepping the
            // stored hash's UTF-8 view checks each index.
            return stored.withUTF8 { stored in
                guard stored.count == 2 * SHA256.byteCount else { return false }
                return digest.withUnsafeBytes { bytes in
                    var difference: UInt8 = 0
                    for (offset, byte) in bytes.enumerated() {
                        // A stored hash is lowercase hex by construction; anything else cannot match.
                        guard let value = Hex.byte(high: stored[2 * offset], low: stored[2 * offset + 1]) else { return false }
                        difference |= value ^ byte
                    }
                    return difference == 0
                }
            }
        }
    }

    /// The number a token id's 16 lowercase hex digits spell; nil for anything else.
    public static func idNumber<Digits: Collection<UInt8>>(_ digits: Digits) -> UInt64? {
        guard digits.count == 16 else { return nil }
        var number: UInt64 = 0
        for digit in digits {
            guard Hex.isLowerHexDigit(digit), let value = Hex.nibble(digit) else { return nil }
            number = number << 4 | UInt64(value)
        }
        return number
    }

    /// Lowercase hex SHA-256 of a string's UTF-8 bytes.
    public static func hash(_ text: String) -> String {
        var text = text
        return text.withUTF8 { Hex.encode(SHA256.hash(data: $0)) }
    }

    /// True when this token's secret hashes to `storedHash`; compares every byte whatever the first mismatch.
    public func matches(storedHash: String) -> Bool {
        ConstantTime.equal(secretHash.utf8, storedHash.utf8)
    }
}

/// Comparisons whose time does not depend on where the inputs differ.
public enum ConstantTime {
    /// Whether two strings' UTF-8 bytes are equal, in time proportional to the length only (no copies).
    public static func equal(_ a: String.UTF8View, _ b: String.UTF8View) -> Bool {
        guard a.count == b.count else { return false }
        // Over the contiguous bytes (native strings always have them): stepping two UTF-8 views in a zip was most
        // of what comparing a 71-byte token cost.
        let compared = a.withContiguousStorageIfAvailable { left in
            b.withContiguousStorageIfAvailable { right in
                var difference: UInt8 = 0
                for index in 0..<left.count { difference |= left[index] ^ right[index] }
                return difference == 0
            }
        }
        if let compared = compared ?? nil { return compared }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

/// Lowercase hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Encodes bytes as lowercase hex.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        bytes.withContiguousStorageIfAvailable { encode(raw: UnsafeRawBufferPointer($0)) }
            ?? Array(bytes).withUnsafeBytes { encode(raw: $0) }
    }

    /// Encodes a SHA-256 digest: one String and nothing else per call, since every call's record carries two.
    public static func encode(_ digest: SHA256.Digest) -> String {
        digest.withUnsafeBytes { encode(raw: $0) }
    }

    private static func encode(raw bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (index, byte) in bytes.enumerated() {
                out[2 * index] = digits[Int(byte >> 4)]
                out[2 * index + 1] = digits[Int(byte & 0x0F)]
            }
            return bytes.count * 2
        }
    }

    /// The SHA-256 of no bytes, hex: the body hash of every GET, made once.
    public static let emptySHA256 = encode(SHA256.hash(data: [UInt8]()))

    /// Decodes hex (either case); nil on odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let byte = byte(high: utf8[index], low: utf8[index + 1]) else { return nil }
            out.append(byte)
            index += 2
        }
        return out
    }

    static func isLowerHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// The byte two hex digits (either case) spell; nil when either is not one.
    static func byte(high: UInt8, low: UInt8) -> UInt8? {
        guard let high = nibble(high), let low = nibble(low) else { return nil }
        return high << 4 | low
    }

    /// The value of one hex digit (either case); nil when it is not one.
    static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Base64 with the URL-safe alphabet and no padding.
public enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes bytes: standard base64 with `-` and `_` for `+` and `/`, padding dropped.
    public static func encode(_ bytes: [UInt8]) -> String {
        String(decoding: Base64.encode(bytes).utf8.compactMap { byte -> UInt8? in
            switch byte {
            case UInt8(ascii: "+"): UInt8(ascii: "-")
            case UInt8(ascii: "/"): UInt8(ascii: "_")
            case UInt8(ascii: "="): nil
            default: byte
            }
        }, as: UTF8.self)
    }

    /// Whether `byte` is in the URL-safe alphabet: by range, since searching the 64-byte alphabet for each of a
    /// token's 43 secret bytes on every call was 1% of the gateway's CPU.
    static func isAlphabetByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"): true
        default: false
        }
    }
}
