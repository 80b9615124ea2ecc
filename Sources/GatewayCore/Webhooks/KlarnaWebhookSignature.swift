import Crypto

/// Klarna's webhook signature: `Klarna-Signature` is the lowercase hex HMAC-SHA256 of the raw body under the
/// signing key's secret, named by `Klarna-Signing-Key-Id`.
public enum KlarnaWebhookSignature {
    /// The signature Klarna sends for `body` (what tests and the simulator sign with).
    public static func sign(body: [UInt8], secret: Secret) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: body, using: key(secret)))
    }

    /// Whether `signature` is the HMAC of `body` under `secret`; the MACs are compared in constant time (swift-crypto's
    /// comparison), so a forger learns nothing from how long a refusal takes. Hex of either case is read; anything
    /// that is not 64 hex digits is refused.
    public static func verify(body: [UInt8], signature: String, secret: Secret) -> Bool {
        guard signature.utf8.count == 64, let mac = Hex.decode(signature) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key(secret))
    }

    private static func key(_ secret: Secret) -> SymmetricKey { SymmetricKey(data: Array(secret.exposedValue.utf8)) }
}
