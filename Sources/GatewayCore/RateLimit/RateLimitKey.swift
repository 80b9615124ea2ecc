/// One key of one rate-limit rule: `merchant` × (merchant id, category), `partner` × (partner id, category),
/// `caller` × (caller id), `caller_merchant` × (caller id, merchant id), `global`. A merchant or partner belongs
/// to one environment, so the key needs none of its own.
public struct RateLimitKey: Hashable, Sendable {
    /// The rule the key belongs to.
    public let rule: RateLimitRule
    /// The first part (merchant, partner or caller id; empty for `global`).
    public let first: String
    /// The second part (category or merchant id; empty when the rule has one part).
    public let second: String

    /// The key's hash, computed once when the key is made: the limiter looks a key up three times under a lock
    /// shared by every event loop, and hashing two strings each time held that lock several times longer.
    private let hash: Int

    /// Makes a key.
    public init(rule: RateLimitRule, first: String, second: String) {
        self.rule = rule
        self.first = first
        self.second = second
        var hasher = Hasher()
        hasher.combine(rule)
        hasher.combine(first)
        hasher.combine(second)
        hash = hasher.finalize()
    }

    /// Equal when rule and both parts are; the stored hashes are compared first, as a cheap miss.
    public static func == (left: RateLimitKey, right: RateLimitKey) -> Bool {
        left.hash == right.hash && left.rule == right.rule && left.first == right.first && left.second == right.second
    }

    /// Feeds the stored hash.
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}

/// What an instance leases from the shared ledger: a key under the limit in force when it asked. A policy reload
/// that changes a limit starts a new lease entry (the old one's unspent admissions go back under the old limit),
/// while the ledger row, keyed by `limit` alone, keeps the key's history.
public struct QuotaLeaseKey: Hashable, Sendable {
    /// The limit's key.
    public let limit: RateLimitKey
    /// The limit's figures.
    public let gcra: GCRA

    /// Makes a lease key.
    public init(limit: RateLimitKey, gcra: GCRA) {
        self.limit = limit
        self.gcra = gcra
    }
}

/// Work for the ledger client: ask for admissions, or give unspent ones back.
public typealias QuotaLeaseAction = QuotaLeaseBook<QuotaLeaseKey>.Action

/// The shared ledger of cluster-wide limits (PostgreSQL in production): `QuotaLedger.grant` and
/// `QuotaLedger.giveBack` run atomically per key on the server, on the server's clock, so instances need no
/// synchronized clocks. Implementations answer or throw; they never decide locally.
public protocol QuotaLedgerBackend: Sendable {
    /// Grants up to `requested` admissions of `key` under `gcra` now.
    func grant(_ key: RateLimitKey, _ gcra: GCRA, requested: Int) async throws -> QuotaGrant
    /// Gives `unused` admissions of `key` back.
    func giveBack(_ key: RateLimitKey, _ gcra: GCRA, unused: Int) async throws
    /// Records that instance `node` is alive and returns how many instances were seen within `window` nanoseconds
    /// (this one included).
    func heartbeat(node: String, window: Int64) async throws -> Int
    /// Forgets keys whose TAT has passed (they mean the same as a key never used).
    func sweep() async throws
}

/// The ledger's answer to a grant, in the asking instance's terms.
public struct QuotaGrant: Sendable, Equatable {
    /// Admissions granted, 0 to the number requested.
    public var granted: Int
    /// When none were granted: nanoseconds until the next admission conforms (0 otherwise).
    public var wait: Int64

    /// Makes an answer.
    public init(granted: Int, wait: Int64) {
        self.granted = granted
        self.wait = wait
    }
}
