extension MerchantRecord {
    /// The merchant's entity tag (`"…"`, strong): a hash of every stored field, so any change by anyone (the API,
    /// the CLI, another instance) gives a new one and a write carrying the old one is refused (412).
    public var etag: String {
        // Unit separators cannot occur in any field (ids, KRNs, group and release names are checked), so the
        // joined text names exactly one record.
        let fields = [
            id, partnerID, account.rawValue, groups.joined(separator: "\u{1E}"), status.rawValue, apiKey?.description ?? "",
            release ?? "",
        ]
        return EntityTag.hashing(fields.joined(separator: "\u{1F}"))
    }
}
