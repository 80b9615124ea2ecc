/// Admin accounts of the admin API, in the gateway's store (SQLite or PostgreSQL).
///
/// Account changes do not bump the store's generation: the data plane's snapshot holds no admin account, and the
/// admin API reads the store on every request, so a removed account stops working at once.
public protocol AdminAccountStore: Sendable {
    /// Every admin account, by name.
    func adminAccounts() async throws -> [AdminAccount]
    /// The account whose token has this id.
    func adminAccount(tokenID: String) async throws -> AdminAccount?
    /// The account holding the client certificate with this fingerprint (lowercase hex).
    func adminAccount(certificateFingerprint: String) async throws -> AdminAccount?
    /// Inserts an account; refuses an existing name.
    func insertAdminAccount(_ account: AdminAccount) async throws
    /// Deletes an account; false when it did not exist.
    func deleteAdminAccount(name: String) async throws -> Bool
}

/// Reads of merchants a page at a time, for lists too long to read whole (100,000 merchants).
public protocol MerchantPaging: Sendable {
    /// Up to `limit` merchants with ids after `after` (all when nil), in id order, whose id or account contains
    /// `matching` (case-insensitively; all when nil).
    func merchantPage(after: String?, matching: String?, limit: Int) async throws -> [MerchantRecord]
    /// Replaces `current` with `next` only if the stored row still equals `current` (a compare-and-set, so two
    /// admins editing the same merchant cannot overwrite each other); false when it changed or is gone.
    func replaceMerchant(_ current: MerchantRecord, with next: MerchantRecord) async throws -> Bool
}

extension MerchantPaging {
    /// `text` as a `LIKE` pattern that matches it anywhere, with `\` as the escape for `%`, `_` and `\`.
    public static func containsPattern(_ text: String) -> String {
        var pattern = "%"
        for character in text.lowercased() {
            if character == "%" || character == "_" || character == "\\" { pattern.append("\\") }
            pattern.append(character)
        }
        return pattern + "%"
    }
}
