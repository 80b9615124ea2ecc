import Crypto

/// The Standard Webhooks scheme the gateway signs its own deliveries with: `webhook-signature` is `v1,` followed by
/// the base64 HMAC-SHA256 of `webhook-id.webhook-timestamp.body` under the destination's secret.
///
/// A secret written `whsec_<base64>` (the scheme's own format) is used as the bytes it encodes; any other secret
/// as its UTF-8 bytes, so receivers built on a Standard Webhooks library and hand-written ones both verify.
public enum StandardWebhookSignature {
    /// The `webhook-signature` header value.
    public static func sign(id: String, timestamp: Int64, body: [UInt8], secret: Secret) -> String {
        var signed = Array("\(id).\(timestamp).".utf8)
        signed.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: keyBytes(secret)))
        return "v1," + Base64.encode(Array(mac))
    }

    /// Whether one of the space-separated `v1,` signatures in `header` is valid (what a receiver does; tests use it).
    public static func verify(header: String, id: String, timestamp: Int64, body: [UInt8], secret: Secret) -> Bool {
        let expected = sign(id: id, timestamp: timestamp, body: body, secret: secret)
        return header.split(separator: " ").contains { ConstantTime.equal(String($0).utf8, expected.utf8) }
    }

    /// The key bytes of a destination secret.
    static func keyBytes(_ secret: Secret) -> [UInt8] {
        let text = secret.exposedValue
        if text.hasPrefix("whsec_"), let decoded = Base64.decode(String(text.dropFirst(6))) { return decoded }
        return Array(text.utf8)
    }
}
