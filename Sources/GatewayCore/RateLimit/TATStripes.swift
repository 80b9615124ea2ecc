import Synchronization

/// Local mode's TATs of the keys that belong to one merchant (`merchant`, `caller_merchant`), spread over stripes
/// that each have a lock of their own.
///
/// Under one lock for every key, two event loops deciding at once moved that lock's cache line and the map's storage
/// between the cores on each decision, even for calls of different merchants (docs/performance.md). A decision now
/// locks only its merchant's stripes, so two loops meet only when they decide for the same merchant, or for two in
/// one stripe. The keys every call shares (partner, caller, global) are lent to each loop instead (`LaneCredits`).
final class TATStripes: Sendable {
    typealias Key = RateLimitKey
    typealias Table = [Key: Int64]

    /// One stripe, padded to two cache lines: the array is only 16-byte aligned, and two stripes' locks in one line
    /// would move between the cores as one lock did.
    struct Stripe: ~Copyable, Sendable {
        let tats = Mutex<Table>([:])
        private let padding = InlineArray<14, UInt64>(repeating: 0)
    }

    /// 64 stripes: a decision locks one or two, so two loops rarely meet on one for different merchants.
    static let count = 64
    private let stripes: InlineArray<64, Stripe> = InlineArray { _ in Stripe() }

    /// The stripe that holds `key`: the top bits of the key's own hash, which the map's seeded hash does not reuse.
    static func stripe(of key: Key) -> Int {
        Int(truncatingIfNeeded: UInt64(UInt(bitPattern: key.stripeHash)) >> 58)
    }

    /// Runs `body` with the stripes of the per-merchant keys among `limits` locked, in ascending order (so two
    /// decisions never wait on each other in a cycle); `body` gets, for each limit in order, the table that holds its
    /// key, or nil for a key kept elsewhere. Two keys in one stripe share a table. The limits are read where they
    /// are, not copied: a copy would retain their keys' strings, which every event loop shares.
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
            return withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Table>?.self, capacity: distinct + limits.count) { pointers in
                lock(UnsafeBufferPointer(rebasing: order[..<distinct]), from: 0, into: pointers) {
                    for index in limits.indices {
                        var table: UnsafeMutablePointer<Table>?
                        if limits[index].rule.isPerMerchant {
                            let stripe = Self.stripe(of: limits[index].key)
                            var at = 0
                            while order[at] != stripe { at += 1 }
                            table = pointers[at]
                        }
                        pointers.initializeElement(at: distinct + index, to: table)
                    }
                    return body(UnsafeBufferPointer(rebasing: pointers[distinct...]))
                }
            }
        }
    }

    /// Locks `order[step...]` one inside the other, noting each stripe's table in `pointers`, then runs `body`.
    private func lock<Result: Sendable>(
        _ order: UnsafeBufferPointer<Int>, from step: Int, into pointers: UnsafeMutableBufferPointer<UnsafeMutablePointer<Table>?>,
        _ body: () -> Result
    ) -> Result {
        if step == order.count { return body() }
        return stripes[order[step]].tats.withLock { table in
            withUnsafeMutablePointer(to: &table) { pointer in
                pointers.initializeElement(at: step, to: pointer)
                return lock(order, from: step + 1, into: pointers, body)
            }
        }
    }

    /// The TAT of `key`, if it has one (its stripe locked alone).
    func tat(_ key: Key) -> Int64? {
        stripes[Self.stripe(of: key)].tats.withLock { $0[key] }
    }

    /// Forgets TATs that lie before `now`: such a key has a full burst, as a key never seen does.
    func sweep(now: Int64) {
        for stripe in 0..<Self.count { stripes[stripe].tats.withLock { $0 = $0.filter { $0.value > now } } }
    }

    /// Keys with a TAT.
    var count: Int {
        (0..<Self.count).reduce(0) { total, stripe in total + stripes[stripe].tats.withLock { $0.count } }
    }
}
