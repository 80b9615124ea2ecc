#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// The key's hash, computed once when the key is made: a decision looks its keys up several times under locks
    /// other event loops may wait for, and hashing two strings each time held them several times longer.
    private let hash: Int

    /// The key's own hash, for picking its stripe of local mode's TATs (`TATStripes`).
    var stripeHash: Int { hash }

    /// Makes a key.
    public init(rule: RateLimitRule, first: String, second: String) {
        self.rule = rule
        self.first = first
        self.second = second
        hash = Self.hash(rule: rule, first, second)
    }

    /// Equal when rule and both parts are, byte for byte (as the hash is made); the stored hashes are compared first,
    /// as a cheap miss.
    public static func == (left: RateLimitKey, right: RateLimitKey) -> Bool {
        left.hash == right.hash && left.rule == right.rule && sameBytes(left.first, right.first) && sameBytes(left.second, right.second)
    }

    /// Feeds the stored hash.
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// The stored hash mixed with a dictionary's seed in one multiply: a dictionary lookup otherwise runs the whole
    /// seeded `Hasher` on it, several times per decision under locks (docs/performance.md). The stored hash is
    /// already spread; the seed still varies the order from one dictionary to another. This gives up the seeded
    /// hash's resistance to keys chosen to collide, which holds only because the parts are the gateway's own ids and
    /// categories, never a caller's text.
    public func _rawHashValue(seed: Int) -> Int {
        var mixed = UInt64(UInt(bitPattern: hash ^ seed)) &* 0xFF51_AFD7_ED55_8CCD
        mixed ^= mixed >> 32
        return Int(truncatingIfNeeded: mixed)
    }

    /// Mixes the parts' UTF-8 bytes eight at a time. `Hasher` on the two strings was about a third of a decision;
    /// this hash only needs to spread keys, since the parts are the gateway's own ids and categories, never a caller's
    /// text (see `_rawHashValue(seed:)`).
    static func hash(rule: RateLimitRule, _ first: String, _ second: String) -> Int {
        var state = UInt64(truncatingIfNeeded: rule.index) &+ 0x9E37_79B9_7F4A_7C15
        mix(first, into: &state)
        mix(second, into: &state)
        return Int(truncatingIfNeeded: state)
    }

    private static func mix(_ part: String, into state: inout UInt64) {
        let mixed: Void? = part.utf8.withContiguousStorageIfAvailable { bytes in
            var offset = 0
            while offset + 8 <= bytes.count {
                absorb(UInt64(littleEndian: UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: offset, as: UInt64.self)), into: &state)
                offset += 8
            }
            var tail: UInt64 = 0
            withUnsafeMutableBytes(of: &tail) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[offset...])) }
            tail = UInt64(littleEndian: tail)
            // The length goes in with the tail, so that "ab" + "c" and "a" + "bc" differ.
            absorb(tail ^ (UInt64(bytes.count) << 56), into: &state)
        }
        if mixed == nil {
            // A string without contiguous UTF-8 (bridged): the same bytes, one at a time.
            mix(String(decoding: Array(part.utf8), as: UTF8.self), into: &state)
        }
    }

    private static func absorb(_ word: UInt64, into state: inout UInt64) {
        state = (state ^ word) &* 0xFF51_AFD7_ED55_8CCD
        state ^= state >> 29
    }

    /// Byte equality: `==` on `String` compares by canonical equivalence, which would not agree with a hash of the
    /// bytes for the rare strings that are equivalent but spelled apart.
    private static func sameBytes(_ left: String, _ right: String) -> Bool {
        // One representation is one spelling: the same small string, or the same storage. The limiter's stored keys
        // were made from the snapshot's strings, which its lookups meet again, so this usually answers.
        if ThreadLocalStrings.sameRepresentation(left, right) { return true }
        let contiguous = left.utf8.withContiguousStorageIfAvailable { leftBytes in
            right.utf8.withContiguousStorageIfAvailable { rightBytes in
                guard leftBytes.count == rightBytes.count else { return false }
                guard let leftBase = leftBytes.baseAddress, let rightBase = rightBytes.baseAddress else { return true }
                return leftBase == rightBase || memcmp(leftBase, rightBase, leftBytes.count) == 0
            }
        }
        return (contiguous ?? nil) ?? left.utf8.elementsEqual(right.utf8)
    }
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
    /// The cluster-wide TATs of `keys` now, read and written nothing (the admin API's rate-limit answers).
    func reading(_ keys: [RateLimitKey]) async throws -> QuotaLedgerReading
}

/// What the ledger holds for some keys at one instant of its clock.
public struct QuotaLedgerReading: Sendable, Equatable {
    /// The ledger's clock, nanoseconds: the TATs are on it.
    public var now: Int64
    /// Each key's TAT; a key without one (never leased, or swept once back to a full burst) has a full burst.
    public var tats: [RateLimitKey: Int64]

    /// Makes a reading.
    public init(now: Int64, tats: [RateLimitKey: Int64]) {
        self.now = now
        self.tats = tats
    }
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
