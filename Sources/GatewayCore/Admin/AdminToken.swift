/// An admin account's bearer token: `adm_` followed by a caller token's shape (`adm_kgw_<id>_<secret>`).
///
/// The prefix keeps the two kinds apart at a glance, in secret scanners and in the gateway: a caller token is
/// never an admin token and an admin token never authenticates a call. Made, hashed and compared exactly as
/// caller tokens are (`CallerToken`), so the reasoning there (256-bit random, plain SHA-256, constant time) holds.
public enum AdminToken {
    /// What every admin token starts with.
    public static let prefix = "adm_"

    /// A new random token.
    public static func generate() -> CallerToken { CallerToken.generate() }

    /// The token as the admin sends it.
    public static func rendered(_ token: CallerToken) -> Secret { Secret(prefix + token.rendered.exposedValue) }

    /// Parses a presented admin token; nil for anything not of the exact shape.
    public static func parse(_ text: Substring) -> CallerToken.Presented? {
        guard text.hasPrefix(prefix) else { return nil }
        return CallerToken.Presented(text.dropFirst(prefix.count))
    }

    /// The id half of a presented token: the key its account is found by.
    public static func tokenID(of presented: CallerToken.Presented) -> String { String(presented.id) }
}
