#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Admissions of the keys that every call of a partner or caller shares (`partner`, `caller`, `global`), lent by the
/// limiter to each thread a portion at a time, so that two event loops deciding at once do not both write those keys'
/// TATs, and take one lock, on every call (docs/config.md, "Rate limits across event loops").
///
/// A loan counts as used when it is made: the key's TAT moves on by the whole portion, as if its calls all came then.
/// What a lane has not spent goes back when its window ends, when the limit changes, and before any decision that
/// would make a call wait or refuse it, so such a decision sees the key as if nothing were lent.
final class LaneCredits: Sendable {
    typealias Key = RateLimitKey

    /// What one lane holds of one key.
    struct Credit: Sendable {
        /// The limit the admissions were lent under; a call under another limit gives them back first.
        var gcra: GCRA
        /// Admissions left.
        var count: Int
        /// The last instant they may be spent.
        var until: Int64
    }

    /// What one lane holds.
    struct Held: Sendable {
        /// Credits by key.
        var credits: [Key: Credit] = [:]
        /// Calls admitted through the lane, per rule (`RateLimitRule.index`): counted under the lane's lock, which
        /// the admission holds anyway, where an atomic counter shared by the threads cost a locked add per rule.
        var admitted = InlineArray<5, Int>(repeating: 0)
    }

    /// One lane, padded to two cache lines so that two lanes' locks never share one.
    struct Lane: ~Copyable, Sendable {
        let held = Mutex<Held>(Held())
        private let padding = InlineArray<8, UInt64>(repeating: 0)
    }

    /// Eight lanes: a gateway's event loops (one per core) each get their own.
    static let count = 8
    /// How long lent admissions may be spent. A call that spends one is counted up to this much before it came, so
    /// in any window at most `rate × window` calls more than the exact GCRA's pass: one call a second per 1,000/s.
    static let window: Int64 = 1_000_000
    private let lanes: InlineArray<8, Lane> = InlineArray { _ in Lane() }

    /// The admissions one loan carries: a sixteenth of the burst, from 1 to 64, so that eight lanes together hold
    /// at most half a burst (or one admission each, under a burst below 16).
    static func portion(_ gcra: GCRA) -> Int { max(1, min(64, gcra.burst / 16)) }

    /// Runs `body` with the calling thread's lane locked.
    func withOwnLane<Result: Sendable>(_ body: (inout Held) -> Result) -> Result {
        lanes[Self.currentLane()].held.withLock { body(&$0) }
    }

    /// Calls admitted through every lane under `rule`.
    func admitted(_ rule: RateLimitRule) -> Int {
        (0..<Self.count).reduce(0) { total, lane in total + lanes[lane].held.withLock { $0.admitted[rule.index] } }
    }

    /// Runs `body` with every lane locked, in ascending order.
    func withAll<Result: Sendable>(_ body: (UnsafeBufferPointer<UnsafeMutablePointer<Held>>) -> Result) -> Result {
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Held>.self, capacity: Self.count) { pointers in
            lock(from: 0, into: pointers) { body(UnsafeBufferPointer(pointers)) }
        }
    }

    private func lock<Result: Sendable>(
        from lane: Int, into pointers: UnsafeMutableBufferPointer<UnsafeMutablePointer<Held>>, _ body: () -> Result
    ) -> Result {
        if lane == Self.count { return body() }
        return lanes[lane].held.withLock { held in
            withUnsafeMutablePointer(to: &held) { pointer in
                pointers.initializeElement(at: lane, to: pointer)
                return lock(from: lane + 1, into: pointers, body)
            }
        }
    }

    /// The lane of the calling thread: handed out in turn at a thread's first decision and kept in a thread-specific
    /// slot, so a gateway's first eight threads (its event loops) never share one, which a hash of thread ids could.
    static func currentLane() -> Int {
        if let value = pthread_getspecific(laneKey) { return Int(bitPattern: UInt(bitPattern: value)) - 1 }
        let lane = nextLane.wrappingAdd(1, ordering: .relaxed).oldValue % count
        pthread_setspecific(laneKey, UnsafeRawPointer(bitPattern: UInt(lane + 1)))
        return lane
    }

    private static let laneKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    private static let nextLane = Atomic<Int>(0)
}

extension RateLimiter.State {
    /// Lends `credits` a portion of `key`'s admissions under `gcra` at `now`, taking back first what it held of the
    /// key; false when the limit has no room now (then the lane holds nothing of the key).
    mutating func lend(_ key: RateLimitKey, _ gcra: GCRA, to credits: inout [RateLimitKey: LaneCredits.Credit], now: Int64) -> Bool {
        if let old = credits.removeValue(forKey: key) { giveBack(key, old) }
        let tat = tats[key]
        let room = gcra.remaining(tat: tat ?? now, now: now)
        guard room > 0 else { return false }
        let portion = min(LaneCredits.portion(gcra), room)
        tats[key] = max(tat ?? now, now) + Int64(portion) * gcra.interval
        credits[key] = LaneCredits.Credit(gcra: gcra, count: portion, until: now + LaneCredits.window)
        return true
    }

    /// Takes back what every lane holds of `key`.
    mutating func reclaim(_ key: RateLimitKey, from lanes: UnsafeBufferPointer<UnsafeMutablePointer<LaneCredits.Held>>) {
        for lane in lanes {
            if let credit = lane.pointee.credits.removeValue(forKey: key) { giveBack(key, credit) }
        }
    }

    /// Takes back everything every lane holds.
    mutating func reclaimAll(from lanes: UnsafeBufferPointer<UnsafeMutablePointer<LaneCredits.Held>>) {
        for lane in lanes {
            for (key, credit) in lane.pointee.credits { giveBack(key, credit) }
            lane.pointee.credits.removeAll(keepingCapacity: true)
        }
    }

    /// Unspent admissions back to the key: its TAT moves back by their share, as if they had never been lent.
    private mutating func giveBack(_ key: RateLimitKey, _ credit: LaneCredits.Credit) {
        guard credit.count > 0, let tat = tats[key] else { return }
        tats[key] = tat - Int64(credit.count) * credit.gcra.interval
    }
}
