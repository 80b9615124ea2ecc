/// Whether a merchant's calls are forwarded.
public enum MerchantStatus: String, Sendable, Hashable, Codable {
    /// Calls are forwarded.
    case active
    /// Calls are refused with `GATEWAY_MERCHANT_SUSPENDED`.
    case suspended
}

/// A merchant the acquirer acts for: its gateway id, its partner and its Klarna account.
public struct MerchantRecord: Sendable, Hashable, Codable {
    /// The id the acquirer chose (`m_1001`); never starts with `krn:`.
    public var id: String
    /// The partner whose key and certificate its calls use.
    public var partnerID: String
    /// Its Klarna partner account.
    public var account: AccountKRN
    /// Groups for grants, plans and release roll-outs.
    public var groups: [String]
    /// Active or suspended.
    public var status: MerchantStatus
    /// Its own sealed API key (direct model), if it has one.
    public var apiKey: CredentialRef?
    /// Its own release pin.
    public var release: String?

    /// Makes a merchant record.
    public init(
        id: String, partnerID: String, account: AccountKRN, groups: [String] = [], status: MerchantStatus = .active,
        apiKey: CredentialRef? = nil, release: String? = nil
    ) {
        self.id = id
        self.partnerID = partnerID
        self.account = account
        self.groups = groups
        self.status = status
        self.apiKey = apiKey
        self.release = release
    }

    /// Why a string cannot be a merchant id, or nil when it can.
    ///
    /// Ids share the account path segment with KRNs, so they may not start with `krn:`, and they are kept to a
    /// conservative alphabet so they are safe in paths, headers, logs and CSV.
    public static func problem(withID id: String) -> String? {
        if id.isEmpty || id.utf8.count > 64 { return "a merchant id has 1 to 64 characters" }
        if id.lowercased().hasPrefix("krn:") { return "a merchant id may not start with 'krn:' (it would read as a KRN)" }
        guard id.utf8.allSatisfy({ AccountKRN.isIDByte($0) || $0 == UInt8(ascii: ".") }) else {
            return "a merchant id uses only letters, digits, '-', '_' and '.'"
        }
        if id == "." || id == ".." { return "a merchant id may not be '.' or '..'" }
        return nil
    }

    /// Why `id` cannot be an id of `kind` (partner, caller), which follow the merchant id rules; nil when it can.
    public static func problem(withID id: String, kind: String) -> String? { problem(withID: id, as: "a \(kind) id") }

    /// The same for a name that follows the merchant id rules, each message worded for `noun` ("an admin name").
    public static func problem(withID id: String, as noun: String) -> String? {
        // Every message starts with "a merchant id".
        problem(withID: id).map { noun + $0.dropFirst("a merchant id".count) }
    }
}
