/// Local mode's TATs of the keys that belong to one merchant (`merchant`, `caller_merchant`), spread over stripes
/// that each have a lock of their own.
///
/// Under one lock for every key, two event loops deciding at once moved that lock's cache line and the map's storage
/// between the cores on each decision, even for calls of different merchants (docs/performance.md). A decision now
/// locks only its merchant's stripes, so two loops meet only when they decide for the same merchant, or for two in
/// one stripe. The keys every call shares (partner, caller, global) are lent to each thread instead (`LaneCredits`).
final class TATStripes: Sendable {
    typealias Key = RateLimitKey
    typealias Table = [Key: Int64]

    /// 64 stripes: a decision locks one or two, so two loops rarely meet on one for different merchants.
    static let count = 64
    private let stripes = LockStripes<64, Table>([:])

    /// The stripe that holds `key`: the top bits of the key's own hash, which the map's bucket does not depend on.
    static func stripe(of key: Key) -> Int {
        Int(truncatingIfNeeded: UInt64(UInt(bitPattern: key.stripeHash)) >> UInt64(64 - count.trailingZeroBitCount))
    }

    /// Runs `body` with the stripes of the per-merchant keys among `limits` locked, in ascending order; `body` gets,
    /// for each limit in order, the table that holds its key, or nil for a key kept elsewhere. Two keys in one stripe
    /// share a table. The limits are read where they are, not copied: a copy would retain their keys' strings.
    func withLocked<Result: Sendable>(
        _ limits: UnsafeBufferPointer<RateLimiter.Applicable>, _ body: (UnsafeBufferPointer<UnsafeMutablePointer<Table>?>) -> Result
    ) -> Result {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: limits.count) { order in
            // The distinct stripes in ascending order, by insertion: a decision has two merchant keys at most.
            var distinct = 0
            for index in limits.indices where limits[index].rule.isPerMerchant {
                let stripe = Self.stripe(of: limits[index].key)
                var at = 0
                while at < distinct && order[at] < stripe { at += 1 }
                if at < distinct && order[at] == stripe { continue }
                var move = distinct
                while move > at { order[move] = order[move - 1]; move -= 1 }
                order[at] = stripe
                distinct += 1
            }
            let locked = UnsafeBufferPointer(rebasing: order[..<distinct])
            return stripes.withLocked(locked) { tables in
                withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Table>?.self, capacity: limits.count) { perLimit in
                    for index in limits.indices {
                        var table: UnsafeMutablePointer<Table>?
                        if limits[index].rule.isPerMerchant {
                            let stripe = Self.stripe(of: limits[index].key)
                            table = tables[locked.firstIndex(of: stripe)!]
                        }
                        perLimit.initializeElement(at: index, to: table)
                    }
                    return body(UnsafeBufferPointer(perLimit))
                }
            }
        }
    }

    /// The TAT of `key`, if it has one (its stripe locked alone).
    func tat(_ key: Key) -> Int64? {
        stripes.withLock(Self.stripe(of: key)) { $0[key] }
    }

    /// Forgets TATs that lie before `now`: such a key has a full burst, as a key never seen does.
    func sweep(now: Int64) {
        for stripe in 0..<Self.count { stripes.withLock(stripe) { $0 = $0.filter { $0.value > now } } }
    }

    /// Keys with a TAT.
    var count: Int { stripes.sum { $0.count } }
}
