/// A Klarna partner account id: `krn:partner:global:account:{test|live}:{ID}`.
///
/// Klarna puts it unescaped in the path (`/v2/accounts/krn:partner:...`), so the parser is strict: a KRN of the
/// wrong shape is refused at the edge instead of being forwarded and answered with Klarna's 404.
public struct AccountKRN: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The full KRN as Klarna writes it.
    public let rawValue: String
    /// The environment written into the KRN.
    public let environment: KlarnaEnvironment
    /// The account part after the environment.
    public let accountID: Substring

    /// The maximum length accepted; Klarna's ids are far shorter, and a bound keeps parsing cheap.
    public static let maximumLength = 128

    /// Parses a KRN; nil for anything that is not exactly a partner account KRN.
    public init?(_ text: some StringProtocol) {
        guard let environment = AccountKRN.environment(of: text) else { return nil }
        let text = String(text)
        self.init(validated: text, environment: environment)
    }

    /// The environment of `text` when it is exactly a partner account KRN, nil otherwise: the check without the
    /// copy, for the request path, which looks the merchant up by the path's own bytes.
    public static func environment(of text: some StringProtocol) -> KlarnaEnvironment? {
        // Through a pointer where the bytes are contiguous (a native string's are): a substring's UTF-8 iterator
        // checks its bounds and index per byte.
        text.utf8.withBytes(environment(ofBytes:))
    }

    private static func environment(ofBytes text: UnsafeBufferPointer<UInt8>) -> KlarnaEnvironment? {
        // One pass over the bytes: `hasPrefix` on a `StringProtocol` compares by Unicode canonical equivalence,
        // which cost more than the rest of the check, and this runs for every merchant-scoped request.
        let prefix: StaticString = "krn:partner:global:account:"
        let prefixLength = prefix.utf8CodeUnitCount
        let idStart = prefixLength + 5
        let environmentNames: (test: StaticString, live: StaticString) = ("test:", "live:")
        var environment = KlarnaEnvironment.test
        var index = 0
        for byte in text {
            if index < prefixLength {
                guard byte == prefix.utf8Start[index] else { return nil }
            } else if index == prefixLength {
                switch byte {
                case UInt8(ascii: "t"): environment = .test
                case UInt8(ascii: "l"): environment = .live
                default: return nil
                }
            } else if index < idStart {
                let name = environment == .test ? environmentNames.test : environmentNames.live
                guard byte == name.utf8Start[index - prefixLength] else { return nil }
            } else {
                guard index < AccountKRN.maximumLength, AccountKRN.isIDByte(byte) else { return nil }
            }
            index += 1
        }
        return index > idStart ? environment : nil
    }

    /// Rebuilds a KRN that was parsed before (the snapshot's merchant table keeps only its string).
    init(validated rawValue: String, environment: KlarnaEnvironment) {
        self.rawValue = rawValue
        self.environment = environment
        // The prefix and `test:`/`live:` are ASCII, so the id starts at a fixed byte offset.
        let start = rawValue.utf8.index(rawValue.utf8.startIndex, offsetBy: AccountKRN.idOffset)
        self.accountID = rawValue[start...]
    }

    /// Rebuilds a KRN from its parts, in one allocation: the merchant table keeps only the id.
    init(environment: KlarnaEnvironment, accountID: String) {
        var rawValue = ""
        rawValue.reserveCapacity(Self.idOffset + accountID.utf8.count)
        rawValue += Self.prefix
        rawValue += environment.rawValue
        rawValue += ":"
        rawValue += accountID
        self.init(validated: rawValue, environment: environment)
    }

    static let prefix = "krn:partner:global:account:"
    /// Where the id starts: after the prefix and `test:` or `live:` (ASCII, so a fixed byte offset).
    static let idOffset = prefix.utf8.count + 5

    /// Klarna's account ids are letters, digits, `-` and `_`; anything else (`%`, `/`, `\`, NUL) is an attack or a bug.
    static func isIDByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// Decodes from the KRN string, validating it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let krn = AccountKRN(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a partner account KRN: \(text)")
        }
        self = krn
    }

    /// Encodes as the KRN string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The KRN string.
    public var description: String { rawValue }
}
