/// Which `Klarna-Idempotency-Key` a call carries upstream.
///
/// Klarna replays the first answer for a repeated key, so a key turns a POST or PATCH whose outcome is unknown
/// into one that can be sent again safely, by the gateway's retries and by the caller.
public enum IdempotencyKeys {
    /// The header Klarna reads.
    public static let header = "Klarna-Idempotency-Key"
    /// The response header naming a key the gateway added.
    public static let gatewayHeader = "Klarna-Gateway-Idempotency-Key"

    /// The methods Klarna honours the key on.
    public static func applies(to method: String) -> Bool { method == "POST" || method == "PATCH" }

    /// The key to add, or nil: the call already has one, the method takes none, or adding is turned off.
    /// `makeKey` is asked only when a key is added (a UUID in production, fixed in tests).
    public static func keyToAdd(method: String, existing: String?, enabled: Bool, makeKey: () -> String) -> String? {
        guard enabled, existing == nil, applies(to: method) else { return nil }
        return makeKey()
    }

    /// True for requests that may be sent twice: reads, and anything carrying a key.
    public static func isRepeatable(method: String, key: String?) -> Bool {
        method == "GET" || method == "HEAD" || key != nil
    }
}
