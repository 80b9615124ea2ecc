/// What an admin account may do through the admin API. Each role includes the rights of the ones before it, so
/// `security` can also do what `operator` can: the people who hold keys are never stopped from suspending.
public enum AdminRole: String, Sendable, Hashable, Codable, CaseIterable {
    /// Reads everything the API shows (which is never a secret).
    case viewer
    /// Changes merchants, callers, releases, suspensions, replays.
    case `operator`
    /// Changes partners' credentials, keys and admin accounts.
    case security

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .security: 2
        }
    }

    /// Whether this role has the rights of `required`.
    public func allows(_ required: AdminRole) -> Bool { rank >= required.rank }
}

/// An admin account as the store keeps it: never the token, only its id and hash (as for callers).
public struct AdminAccount: Sendable, Hashable, Codable {
    /// The account's name, as audit records show it (`admin:NAME`).
    public var name: String
    /// What it may do.
    public var role: AdminRole
    /// The public half of its token, to find the hash to compare.
    public var tokenID: String
    /// SHA-256 of the token's secret half, lowercase hex.
    public var tokenHash: String
    /// When it was added, microseconds since the Unix epoch, UTC.
    public var createdMicros: Int64
    /// The SHA-256 of its client certificate's DER, 64 lowercase hex digits; nil for a token-only account.
    public var certificateFingerprint: String?

    /// Whether the account has a token; a certificate-only account stores no hash, so no presented token matches it.
    public var hasToken: Bool { !tokenHash.isEmpty }

    /// Makes an account record.
    public init(name: String, role: AdminRole, tokenID: String, tokenHash: String, createdMicros: Int64, certificateFingerprint: String? = nil) {
        self.name = name
        self.role = role
        self.tokenID = tokenID
        self.tokenHash = tokenHash
        self.createdMicros = createdMicros
        self.certificateFingerprint = certificateFingerprint
    }
}
