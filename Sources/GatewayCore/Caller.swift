/// Whether a caller may still authenticate.
public enum CallerStatus: String, Sendable, Hashable, Codable {
    /// May authenticate.
    case active
    /// Refused as if unknown.
    case revoked
}

/// An internal client of the gateway as the store keeps it: never the token, only its id and hash.
public struct CallerRecord: Sendable, Hashable, Codable {
    /// The caller's id, as grants in `policies/access.yaml` name it.
    public var id: String
    /// The public half of its bearer token, to find the hash to compare; nil for a certificate-only caller.
    public var tokenID: String?
    /// SHA-256 of the token's secret half, lowercase hex.
    public var tokenHash: String?
    /// SHA-256 fingerprint of the client certificate it must present, lowercase hex.
    public var certificateFingerprint: String?
    /// Active or revoked.
    public var status: CallerStatus

    /// Makes a caller record.
    public init(
        id: String, tokenID: String?, tokenHash: String?, certificateFingerprint: String?, status: CallerStatus = .active
    ) {
        self.id = id
        self.tokenID = tokenID
        self.tokenHash = tokenHash
        self.certificateFingerprint = certificateFingerprint
        self.status = status
    }
}
