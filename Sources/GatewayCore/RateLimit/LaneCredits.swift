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
/// A loan counts as used when it is made: the key's TAT moves on by the whole loan, as if its calls all came then.
/// A lane spends a loan only within its window and under the limit it was lent under. What it has not spent goes back
/// when the lane next borrows the key, before any call for the key is made to wait or refused, when the admin API
/// reads the key, and at each sweep, as far as the loan is still the last thing charged to the key (`State.giveBack`).
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
        /// The key's TAT right after the loan: while it still is, the loan is the last thing charged to the key.
        var end: Int64
        /// The admissions this loan asked for, which sizes the next (`State.lend`).
        var size: Int
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
    /// in any window at most `rate × window` calls more than the exact GCRA's pass: one call at 1,000/s.
    static let window: Int64 = 1_000_000
    private let lanes = LockStripes<8, Held>(Held())

    /// The most admissions one loan carries: a sixteenth of the burst, from 1 to 64, so that eight lanes together hold
    /// at most half a burst (or one admission each, under a burst below 16). A lane's loans start at one and follow
    /// its demand up to this (`State.lend`).
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
    /// Lends `credits` admissions of `key` under `gcra` at `now` (`QuotaLedger.grant`), giving back first what it
    /// held of the key; false when the limit has no room now (then the lane holds nothing of the key).
    ///
    /// A loan reserves the key's next slots, so admissions a lane does not spend hold the others back until they come
    /// back, and they can come back only while the loan is the last thing charged to the key (`giveBack`). So a loan
    /// follows its lane's demand: twice the last when that was spent within the first half of its window, the same
    /// when within the second, one when the lane asks later (fewer calls than one a window), half when it ran out with
    /// admissions left, one after a change of limit; never above `LaneCredits.portion`. A loan so sized is spent
    /// within its window while the lane's demand holds, so it seldom has admissions left that could not come back.
    mutating func lend(_ key: RateLimitKey, _ gcra: GCRA, to credits: inout [RateLimitKey: LaneCredits.Credit], now: Int64) -> Bool {
        let now = observe(now)
        var size = 1
        if let old = credits.removeValue(forKey: key) {
            giveBack(key, old, now: now)
            if old.gcra == gcra {
                if old.count > 0 {
                    size = max(1, old.size / 2)
                } else if now <= old.until - LaneCredits.window / 2 {
                    size = old.size * 2
                } else if now <= old.until {
                    size = old.size
                }
            }
        }
        size = min(size, LaneCredits.portion(gcra))
        let grant = QuotaLedger.grant(gcra, tat: tats[key], requested: size, now: now)
        guard grant.granted > 0, let end = grant.tat else { return false }
        tats[key] = end
        credits[key] = LaneCredits.Credit(gcra: gcra, count: grant.granted, until: now + LaneCredits.window, end: end, size: size)
        return true
    }

    /// Gives back what the lanes hold of `key`, latest loan first, as far as each is the last thing charged to the key
    /// in turn. The rest stays with its lanes, to be spent within its window.
    mutating func reclaim(_ key: RateLimitKey, from lanes: UnsafeBufferPointer<UnsafeMutablePointer<LaneCredits.Held>>, now: Int64) {
        let now = observe(now)
        var gave = true
        while gave {
            gave = false
            for lane in lanes {
                guard let credit = lane.pointee.credits[key], credit.count > 0, credit.end == tats[key] else { continue }
                lane.pointee.credits[key] = nil
                giveBack(key, credit, now: now)
                gave = true
            }
        }
    }

    /// Gives back what can come back of every key the lanes hold, and forgets loans that are spent or past their window.
    mutating func reclaimAll(from lanes: UnsafeBufferPointer<UnsafeMutablePointer<LaneCredits.Held>>, now: Int64) {
        let now = observe(now)
        var keys = Set<RateLimitKey>()
        for lane in lanes { keys.formUnion(lane.pointee.credits.keys) }
        for key in keys { reclaim(key, from: lanes, now: now) }
        for lane in lanes { lane.pointee.credits = lane.pointee.credits.filter { $0.value.count > 0 && $0.value.until >= now } }
    }

    /// The latest `now` any caller brought, which a give-back measures from: each caller reads its clock before it
    /// waits for the locks, and an older `now` would count passed slots as still ahead.
    private mutating func observe(_ now: Int64) -> Int64 {
        clock = max(clock, now)
        return clock
    }

    /// Gives back a loan's unspent admissions if it is the last thing charged to the key: they are then the TAT's last
    /// slots, and moving the TAT back over them (never behind `now`, `QuotaLedger.giveBack`) moves no other call's
    /// slot. A loan followed by another cannot come back: taking its slots out would move the later loans' spent
    /// slots earlier than their calls came, and admit more than the limit (docs/performance.md).
    private mutating func giveBack(_ key: RateLimitKey, _ credit: LaneCredits.Credit, now: Int64) {
        guard credit.count > 0, let tat = tats[key], tat == credit.end else { return }
        tats[key] = QuotaLedger.giveBack(credit.gcra, tat: tat, unused: credit.count, now: now)
    }
}
