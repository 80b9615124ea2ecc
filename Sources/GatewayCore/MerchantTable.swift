/// The snapshot's merchants, found by gateway id or by account KRN.
///
/// Stored compactly because an acquirer has 100,000 merchants and more: one small entry per merchant in one array,
/// and two open-addressed indexes of array positions. Two dictionaries of `MerchantState` took 57 MB for 100,000
/// merchants (a 170-byte value in each of 262,144 buckets, most fields empty for most merchants); this takes about
/// 8 MB (the KRNs' common prefix not stored per merchant). Fields most merchants lack (own key, release pin) live in a side array.
public struct MerchantTable: Sendable {
    private struct Entry: Sendable {
        let id: String
        /// The account KRN's id, after `krn:partner:global:account:{environment}:`: the prefix is the same for every
        /// merchant, and an id of up to 15 bytes is stored in the `String` itself, where a whole KRN (38 bytes and
        /// more) took a heap allocation of its own, 8 MB for 100,000 merchants.
        let accountID: String
        let groups: [String]
        /// Position in `partnerIDs`: a partner's id is stored once, not once per merchant.
        let partner: Int32
        /// Position in `rare`, or -1.
        let rare: Int32
        let status: MerchantStatus
        let environment: KlarnaEnvironment
    }

    private struct Rare: Sendable {
        let apiKey: CredentialRef?
        let release: String?
        let ownAuthorization: Secret?
        let ownKeyEnvironment: KlarnaEnvironment?
    }

    private let entries: [Entry]
    private let partnerIDs: [String]
    private let rare: [Rare]
    private let byID: PositionIndex
    private let byAccount: PositionIndex

    /// Builds the table; of two merchants with the same id or the same account, the later one wins.
    public init(_ merchants: [MerchantState]) {
        var entries: [Entry] = []
        var partnerIDs: [String] = []
        var rare: [Rare] = []
        var byID = PositionIndex(capacity: merchants.count)
        var byAccount = PositionIndex(capacity: merchants.count)
        entries.reserveCapacity(merchants.count)
        var partners: [String: Int32] = [:]
        var groupSets: [[String]: [String]] = [:]
        for merchant in merchants {
            let record = merchant.record
            let partner: Int32
            if let known = partners[record.partnerID] {
                partner = known
            } else {
                partner = Int32(partnerIDs.count)
                partners[record.partnerID] = partner
                partnerIDs.append(record.partnerID)
            }
            // Merchants share a few group lists; one copy of each keeps 100,000 arrays from being 100,000 allocations.
            var groups = record.groups
            if !groups.isEmpty {
                if let shared = groupSets[groups] { groups = shared } else { groupSets[groups] = groups }
            }
            var rarePosition: Int32 = -1
            if record.apiKey != nil || record.release != nil || merchant.ownAuthorization != nil {
                rarePosition = Int32(rare.count)
                rare.append(Rare(
                    apiKey: record.apiKey, release: record.release, ownAuthorization: merchant.ownAuthorization,
                    ownKeyEnvironment: merchant.ownKeyEnvironment
                ))
            }
            let entry = Entry(
                id: record.id, accountID: String(record.account.accountID), groups: groups, partner: partner, rare: rarePosition,
                status: record.status, environment: record.account.environment
            )
            let idHash = record.id.hashValue
            let position: Int32
            if let existing = byID.find(hash: idHash, matches: { entries[Int($0)].id == entry.id }) {
                position = existing
                entries[Int(existing)] = entry
            } else {
                position = Int32(entries.count)
                entries.append(entry)
                byID.insert(position, hash: idHash) { _ in false }
            }
            byAccount.insert(position, hash: Self.accountHash(entry.accountID.utf8, entry.environment)) {
                entries[Int($0)].environment == entry.environment && entries[Int($0)].accountID == entry.accountID
            }
        }
        self.entries = entries
        self.partnerIDs = partnerIDs
        self.rare = rare
        self.byID = byID
        self.byAccount = byAccount
    }

    /// How many merchants there are.
    public var count: Int { entries.count }

    /// How many merchants are pinned to each release, per environment: one walk of the table, for the admin API
    /// (a pin lives in the side array, so merchants without one cost a comparison each).
    public func releasePins() -> [KlarnaEnvironment: [String: Int]] {
        var pins: [KlarnaEnvironment: [String: Int]] = [:]
        for entry in entries where entry.rare >= 0 {
            if let release = rare[Int(entry.rare)].release { pins[entry.environment, default: [:]][release, default: 0] += 1 }
        }
        return pins
    }

    /// Every merchant's record, in table order, made as it is walked: for the admin API's roll-out preview.
    public var records: LazyMapSequence<Range<Int>, MerchantRecord> { entries.indices.lazy.map { state(at: Int32($0)).record } }

    /// The merchant with this gateway id.
    public subscript(_ id: String) -> MerchantState? {
        byID.find(hash: id.hashValue) { entries[Int($0)].id == id }.map { state(at: $0) }
    }

    /// The merchant whose account is this KRN (its raw value); a `Substring` of a request's path is looked up as it
    /// is, without a copy.
    public subscript(account account: some StringProtocol) -> MerchantState? {
        guard let environment = AccountKRN.environment(of: account) else { return nil }
        return self[account: account, of: environment]
    }

    /// The same for a KRN its caller has already checked to be a partner account KRN of `environment`
    /// (`AccountKRN.environment(of:)`), so that the request path reads the KRN's bytes once, not twice.
    subscript(account account: some StringProtocol, of environment: KlarnaEnvironment) -> MerchantState? {
        let id = account.utf8.dropFirst(AccountKRN.idOffset)
        let found = byAccount.find(hash: Self.accountHash(id, environment)) {
            entries[Int($0)].environment == environment && entries[Int($0)].accountID.utf8.elementsEqual(id)
        }
        return found.map { state(at: $0) }
    }

    /// The account index's hash: the environment and the id's bytes, read in place where they are contiguous.
    private static func accountHash<ID: Collection<UInt8>>(_ id: ID, _ environment: KlarnaEnvironment) -> Int {
        var hasher = Hasher()
        hasher.combine(environment)
        id.withBytes { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        return hasher.finalize()
    }

    private func state(at position: Int32) -> MerchantState {
        let entry = entries[Int(position)]
        let extra = entry.rare >= 0 ? rare[Int(entry.rare)] : nil
        let record = MerchantRecord(
            id: entry.id, partnerID: partnerIDs[Int(entry.partner)],
            account: AccountKRN(environment: entry.environment, accountID: entry.accountID), groups: entry.groups,
            status: entry.status, apiKey: extra?.apiKey, release: extra?.release
        )
        return MerchantState(record: record, ownAuthorization: extra?.ownAuthorization, ownKeyEnvironment: extra?.ownKeyEnvironment)
    }
}

/// An open-addressed (linear probing) table of `Int32` positions into an array that holds the keys, so the keys
/// are not stored twice; kept at most half full.
struct PositionIndex: Sendable {
    private var slots: [Int32]
    private let mask: Int

    init(capacity: Int) {
        var size = 8
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        mask = size - 1
    }

    /// The position whose key `matches` says is the one sought.
    func find(hash: Int, matches: (Int32) -> Bool) -> Int32? {
        var slot = hash & mask
        while true {
            let position = slots[slot]
            if position < 0 { return nil }
            if matches(position) { return position }
            slot = (slot + 1) & mask
        }
    }

    /// Puts `position` in the slot of an equal key (`matches`) or in the first free one.
    mutating func insert(_ position: Int32, hash: Int, matches: (Int32) -> Bool) {
        var slot = hash & mask
        while slots[slot] >= 0 && !matches(slots[slot]) { slot = (slot + 1) & mask }
        slots[slot] = position
    }
}
