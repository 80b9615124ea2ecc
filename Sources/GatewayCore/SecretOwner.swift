/// The owner and credential ids sealed secrets are bound to, in one place so that the store, the admin
/// commands and the loader agree on them.
public enum SecretOwner {
    /// `partner:<id>`.
    public static func partner(_ id: String) -> String { "partner:\(id)" }
    /// `merchant:<id>`.
    public static func merchant(_ id: String) -> String { "merchant:\(id)" }

    /// A partner's API key credential (`partner:<id>:api-key`).
    public static func partnerAPIKey(_ id: String, version: Int) -> CredentialRef {
        CredentialRef(id: "partner:\(id):api-key", version: version)
    }
    /// A partner's mTLS client private key credential (`partner:<id>:client-key`).
    public static func partnerClientKey(_ id: String, version: Int) -> CredentialRef {
        CredentialRef(id: "partner:\(id):client-key", version: version)
    }
    /// A merchant's own API key credential (`merchant:<id>:api-key`).
    public static func merchantAPIKey(_ id: String, version: Int) -> CredentialRef {
        CredentialRef(id: "merchant:\(id):api-key", version: version)
    }
}
