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
/// A lane spends a loan only within its window and under the limit it was lent under. What it has not spent goes back
/// when the lane next borrows the key, before any call for the key is made to wait or refused (so that call sees the
/// key as if nothing were lent), when the admin API reads the key, and at each sweep: those admissions whose time is
/// still ahead, never those that have passed.
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
        /// The key's TAT right after the loan: its admissions are the slots just before it.
        var end: Int64
        /// `State.returned` of the key when lent: what was given back since moved the loan's slots earlier by at most
        /// the difference.
        var returnedBefore: Int64
    }

    /// What one lane holds.
    struct Held: Sendable {
        /// Credits by key.
        var credits: [Key: Credit] = [:]
        /// Calls admitted through the lane, per rule (`RateLimitRule.index`): counted under the lane's lock, which
        /// the admission holds anyway, where an atomic counter shared by the threads cost a locked add per rule.
        var admitted = InlineArray<5, Int>(repeating: 0)
    }

    /// Eight lanes: a gateway's event loops (one per core) each get their own.
    static let count = 8
    /// How long lent admissions may be spent. A call that spends one is counted up to this much before it came, so
    /// in any window at most `rate × window` calls more than the exact GCRA's pass: one call a second per 1,000/s.
    static let window: Int64 = 1_000_000
    private let lanes = LockStripes<8, Held>(Held())

    /// The admissions one loan carries: a sixteenth of the burst, from 1 to 64, so that eight lanes together hold
    /// at most half a burst (or one admission each, under a burst below 16).
    static func portion(_ gcra: GCRA) -> Int { max(1, min(64, gcra.burst / 16)) }

    /// Runs `body` with the calling thread's lane locked.
    func withOwnLane<Result: Sendable>(_ body: (inout Held) -> Result) -> Result {
        lanes.withLock(Self.currentLane(), body)
    }

    /// Calls admitted through every lane under `rule`.
    func admitted(_ rule: RateLimitRule) -> Int { lanes.sum { $0.admitted[rule.index] } }

    /// Runs `body` with every lane locked, in ascending order.
    func withAll<Result: Sendable>(_ body: (UnsafeBufferPointer<UnsafeMutablePointer<Held>>) -> Result) -> Result {
        lanes.withAllLocked(body)
    }

    /// The lane of the calling thread: handed out in turn at a thread's first decision and kept in a thread-specific
    /// slot, so a gateway's first eight threads (its event loops) never share one, which a hash of thread ids could.
    static func currentLane() -> Int {
        if let value = pthread_getspecific(laneKey) { return Int(bitPattern: UInt(bitPattern: value)) - 1 }
        let lane = nextLane.wrappingAdd(1, ordering: .relaxed).oldValue % count
        pthread_setspecific(laneKey, UnsafeRawPointer(bitPattern: UInt(lane + 1)))
        return lane
    }

    /// Puts the calling thread in `lane`: tests pin their threads, since lanes handed out in turn to the threads of
    /// tests running at once could give two of one test's threads the same lane.
    static func pinCurrentThread(to lane: Int) {
        pthread_setspecific(laneKey, UnsafeRawPointer(bitPattern: UInt(lane % count + 1)))
    }

    private static let laneKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    private static let nextLane = Atomic<Int>(0)
}

extension RateLimiter.State {
    /// Lends `credits` a portion of `key`'s admissions under `gcra` at `now` (`QuotaLedger.grant`), taking back first
    /// what it held of the key; false when the limit has no room now (then the lane holds nothing of the key).
    mutating func lend(_ key: RateLimitKey, _ gcra: GCRA, to credits: inout [RateLimitKey: LaneCredits.Credit], now: Int64) -> Bool {
        if let old = credits.removeValue(forKey: key) { giveBack(key, old, now: now) }
        let grant = QuotaLedger.grant(gcra, tat: tats[key], requested: LaneCredits.portion(gcra), now: now)
        guard grant.granted > 0, let end = grant.tat else { return false }
        tats[key] = end
        credits[key] = LaneCredits.Credit(
            gcra: gcra, count: grant.granted, until: now + LaneCredits.window, end: end, returnedBefore: returned[key] ?? 0)
        return true
    }

    /// Takes back what every lane holds of `key`.
    mutating func reclaim(_ key: RateLimitKey, from lanes: UnsafeBufferPointer<UnsafeMutablePointer<LaneCredits.Held>>, now: Int64) {
        for lane in lanes {
            if let credit = lane.pointee.credits.removeValue(forKey: key) { giveBack(key, credit, now: now) }
        }
    }

    /// Takes back everything every lane holds; with no loan left, what was given back is forgotten too.
    mutating func reclaimAll(from lanes: UnsafeBufferPointer<UnsafeMutablePointer<LaneCredits.Held>>, now: Int64) {
        for lane in lanes {
            for (key, credit) in lane.pointee.credits { giveBack(key, credit, now: now) }
            lane.pointee.credits.removeAll(keepingCapacity: true)
        }
        returned.removeAll(keepingCapacity: true)
    }

    /// Gives back the loan's unspent admissions whose slots are still ahead of `now` (`QuotaLedger.giveBack`).
    ///
    /// A loan's unspent admissions are the last slots before its end; what other loans gave back since moved them
    /// earlier by at most `returned - returnedBefore` (all of it, counted as if lent before this one: an estimate that
    /// can only give back less). Slots already passed stay spent, as the GCRA forgets time behind its TAT: giving
    /// them back took them off loans lent since, and admitted more than the limit (docs/performance.md).
    private mutating func giveBack(_ key: RateLimitKey, _ credit: LaneCredits.Credit, now: Int64) {
        guard credit.count > 0, let tat = tats[key] else { return }
        let end = credit.end - ((returned[key] ?? 0) - credit.returnedBefore)
        guard end > now else { return }
        let ahead = Int(min(Int64(credit.count), (end - now) / credit.gcra.interval))
        guard ahead > 0 else { return }
        tats[key] = QuotaLedger.giveBack(credit.gcra, tat: tat, unused: ahead, now: now)
        returned[key, default: 0] += Int64(ahead) * credit.gcra.interval
    }
}
