/// The admin API's one shape of entity tag (`"` 32 lowercase hex digits `"`, strong): merchants, partners, the
/// roll-out set, the policies and the log level each hash their state into one, and `If-Match` is checked against it.
public enum EntityTag {
    /// The tag of a state written out as `text` (every field, joined so that the text names exactly one state).
    public static func hashing(_ text: String) -> String { "\"" + CallerToken.hash(text).prefix(32) + "\"" }

    /// A version as an operator types it, with or without the quotes the history prints around it, as a tag.
    public static func quoted(_ version: String) -> String { version.hasPrefix("\"") ? version : "\"\(version)\"" }

    /// Whether `text` has the shape of a tag; anything else, `*` included, cannot name a version of a resource.
    public static func isWellFormed(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.count == 34 && bytes.first == UInt8(ascii: "\"") && bytes.last == UInt8(ascii: "\"")
            && bytes[1..<33].allSatisfy(Hex.isLowerHexDigit)
    }
}
