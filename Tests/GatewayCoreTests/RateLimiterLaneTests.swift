import Foundation
@testable import GatewayCore
import Testing

/// Loans of shared keys to each thread (`LaneCredits`): decisions on several threads never pass more than the exact
/// GCRA, a loan is never spent late or under another limit, and one that is the key's last charge comes back for a
/// thread that needs it.
@Suite("Rate limits across threads (loans of shared keys)")
struct RateLimiterLaneTests {
    static let second: Int64 = 1_000_000_000

    func subject(merchant: String, caller: String = "checkout") -> RateLimitSubject {
        RateLimitSubject(callerID: caller, merchantID: merchant, merchantGroups: [], partnerID: "acq", environment: .test, category: "x")
    }

    /// A partner limit only: the merchant level has no limit, so every refusal is the partner's.
    func partnerPolicy(rate: Double = 1, burst: Int) -> RateLimitPolicy {
        RateLimitPolicy(merchant: [.test: CategoryLimits(default: nil)], partner: [.test: CategoryLimits(default: LimitSpec(rate: rate, burst: burst))])
    }

    /// The partner key's calls admissible at `now`, as the admin API reads them.
    func partnerRoom(_ limiter: RateLimiter, _ policy: RateLimitPolicy, now: Int64) -> Int? {
        limiter.room([subject(merchant: "any")], rules: [.partner], policy: policy, now: now).first?.remaining
    }

    /// Runs `body` on a thread of its own (not one of the cooperative pool's), in `lane`.
    func onNewThread<Result: Sendable>(lane: Int, _ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { (done: CheckedContinuation<Result, Never>) in
            Thread {
                LaneCredits.pinCurrentThread(to: lane)
                done.resume(returning: body())
            }.start()
        }
    }

    /// Makes `calls` decisions `every` nanoseconds apart on one thread that moves between lanes 0 and 1 each call, so
    /// that two lanes call in turn in a fixed order; returns how many were admitted.
    func callsInTurn(_ limiter: RateLimiter, _ policy: RateLimitPolicy, calls: Int, every step: Int64) async -> Int {
        await onNewThread(lane: 0) {
            (0..<calls).count { call in
                LaneCredits.pinCurrentThread(to: call % 2)
                return limiter.decide(subject(merchant: "m\(call)"), policy: policy, now: Int64(call) * step) == .admit
            }
        }
    }

    @Test("eight threads spending one partner's burst at one instant are admitted no more than the burst")
    func exactAcrossThreads() async {
        let limiter = RateLimiter()
        let policy = partnerPolicy(burst: 1_000)
        let admitted = await withTaskGroup(of: Int.self) { group in
            for thread in 0..<8 {
                group.addTask {
                    await onNewThread(lane: thread) {
                        (0..<500).count { limiter.decide(subject(merchant: "m\(thread)-\($0)"), policy: policy, now: 0) == .admit }
                    }
                }
            }
            return await group.reduce(0, +)
        }
        // A thread that ends its 500 calls holding a loan that another's followed leaves it unspent: at most one
        // loan each (62 admissions at most), so never fewer than 1,000 − 8 × 62.
        #expect(admitted <= 1_000 && admitted >= 1_000 - 8 * 62)
        #expect(limiter.counts[.partner]?.admitted == admitted)
        #expect(limiter.counts[.partner]?.refused == 4_000 - admitted)
        #expect(partnerRoom(limiter, policy, now: 0) == 0)
        // One interval later exactly one more call conforms, as after 1,000 calls on one thread.
        #expect(limiter.decide(subject(merchant: "late"), policy: policy, now: Self.second) == .admit)
        #expect(limiter.decide(subject(merchant: "late"), policy: policy, now: Self.second) != .admit)
    }

    @Test("a thread is not refused while another thread's last loan of the key holds an admission: the loan comes back first")
    func aLoanComesBackForAnotherThread() async {
        let limiter = RateLimiter()
        // A burst of 33 lends up to two admissions at a time: 32 calls at one instant take loans of 1 and 16 × 2.
        let policy = partnerPolicy(burst: 33)
        let first = await onNewThread(lane: 0) {
            (0..<32).count { limiter.decide(subject(merchant: "a\($0)"), policy: policy, now: 0) == .admit }
        }
        // The first thread's lane holds the 33rd admission, in the key's last loan; the second thread gets it, then
        // nothing.
        let decisions = await onNewThread(lane: 1) {
            (0..<2).map { limiter.decide(subject(merchant: "b\($0)"), policy: policy, now: 0) }
        }
        #expect(first == 32)
        #expect(decisions.first == .admit)
        guard decisions.count == 2, case .refuse(_, let rule) = decisions[1] else {
            Issue.record("the 33rd call at one instant must be refused, got \(decisions)")
            return
        }
        #expect(rule == .partner)
    }

    @Test("a loan is not spent after its window: a call long after the last one counts when it comes")
    func aLoanEndsWithItsWindow() {
        let limiter = RateLimiter()
        let policy = partnerPolicy(burst: 32)
        // Two calls at 0 borrow one admission, then two, and keep one.
        #expect(limiter.decide(subject(merchant: "m1"), policy: policy, now: 0) == .admit)
        #expect(limiter.decide(subject(merchant: "m1"), policy: policy, now: 0) == .admit)
        // 100 s later the key is back to a full burst; the lane's admission dated 0 must not pay for this call, or
        // the key would read as a full burst again although a call was just admitted.
        #expect(limiter.decide(subject(merchant: "m1"), policy: policy, now: 100 * Self.second) == .admit)
        #expect(partnerRoom(limiter, policy, now: 100 * Self.second) == 31)
        #expect(limiter.counts[.partner]?.admitted == 3)
        // The sweep takes the loans back and forgets keys with a full burst.
        limiter.sweep(now: 200 * Self.second)
        #expect(limiter.trackedKeys == 0)
    }

    @Test("a loan made under one limit goes back under it when the limit changes")
    func aLoanEndsWithItsLimit() {
        let limiter = RateLimiter()
        let before = partnerPolicy(rate: 1, burst: 32)
        let after = partnerPolicy(rate: 2, burst: 64)
        // The second call borrows two (the first was spent at once) and keeps one.
        #expect(limiter.decide(subject(merchant: "m1"), policy: before, now: 0) == .admit)
        #expect(limiter.decide(subject(merchant: "m1"), policy: before, now: 0) == .admit)
        // Under the new limit the lane gives back the admission it holds under the old one, then borrows anew. Two
        // calls under the old limit and one under the new leave the key's TAT at 2.5 s, as the exact GCRA has it:
        // 59 of 64 left (58 had the old loan been spent under the new limit).
        #expect(limiter.decide(subject(merchant: "m1"), policy: after, now: 0) == .admit)
        #expect(partnerRoom(limiter, after, now: 0) == 59)
    }

    @Test("a refusal after loans carries the exact GCRA's Retry-After and reset")
    func refusalHeadersAfterLoans() {
        let limiter = RateLimiter()
        let policy = partnerPolicy(rate: 16, burst: 32)
        for call in 0..<32 { #expect(limiter.decide(subject(merchant: "m\(call)"), policy: policy, now: 0) == .admit) }
        guard case .refuse(let error, let rule) = limiter.decide(subject(merchant: "x"), policy: policy, now: 0) else {
            Issue.record("the 33rd call at one instant must be refused")
            return
        }
        #expect(rule == .partner)
        // 32 calls at 16/s: the key is back to a full burst after 2 s; the next call conforms after 1/16 s.
        let headers = Dictionary(error.headers, uniquingKeysWith: { first, _ in first })
        #expect(headers["Retry-After"] == "1")
        #expect(headers["X-Ratelimit-Reset"] == "2")
    }

    @Test("a loan a restart of the key's TAT has forgotten is dropped, not given back: a stale lane lends nothing extra")
    func aForgottenLoanIsNotGivenBack() async {
        let limiter = RateLimiter()
        let policy = partnerPolicy(burst: 32)
        // One thread borrows at 0; the other lends the key anew 100 s later, when its TAT has fallen behind and starts
        // again from then.
        _ = await onNewThread(lane: 0) { limiter.decide(subject(merchant: "a"), policy: policy, now: 0) }
        let later = await onNewThread(lane: 1) {
            (0..<33).count { limiter.decide(subject(merchant: "b\($0)"), policy: policy, now: 100 * Self.second) == .admit }
        }
        #expect(later == 32)
    }

    @Test("a hold learned from Klarna applies although the thread holds a loan, and only until it ends")
    func aHoldOverridesLoans() {
        let limiter = RateLimiter()
        let policy = partnerPolicy(burst: 32)
        let merchant = subject(merchant: "m1")
        #expect(limiter.decide(merchant, policy: policy, now: 0) == .admit)
        limiter.hold(merchant, until: 5 * Self.second)
        guard case .refuse(let error, _) = limiter.decide(merchant, policy: policy, now: Self.second) else {
            Issue.record("a call during Klarna's hold must be refused")
            return
        }
        #expect(error.headers.first { $0.0 == "Retry-After" }?.1 == "4")
        #expect(limiter.decide(merchant, policy: policy, now: 5 * Self.second) == .admit)
    }

    @Test("shaping on a shared key after loans waits as the exact GCRA does")
    func shapingAfterLoans() {
        let limiter = RateLimiter()
        var policy = partnerPolicy(rate: 10, burst: 32)
        policy.options = ["partner": RuleOptions(maxDelayMs: 1_000)]
        // 31 calls leave one lent admission in the lane; the 32nd spends it, then the waits are 100 and 200 ms.
        for call in 0..<32 { #expect(limiter.decide(subject(merchant: "m\(call)"), policy: policy, now: 0) == .admit) }
        #expect(limiter.decide(subject(merchant: "x"), policy: policy, now: 0) == .delay(nanoseconds: Self.second / 10))
        #expect(limiter.decide(subject(merchant: "y"), policy: policy, now: 0) == .delay(nanoseconds: Self.second / 5))
        #expect(limiter.counts[.partner]?.delayed == 2)
        #expect(limiter.counts[.partner]?.admitted == 32)
    }

    @Test("a call refused by the caller's limit spends none of the partner's loan")
    func aRefusalSpendsNoLoan() {
        let limiter = RateLimiter()
        let policy = RateLimitPolicy(
            merchant: [.test: CategoryLimits(default: nil)], partner: [.test: CategoryLimits(default: LimitSpec(rate: 1, burst: 1_000))],
            caller: LimitSpec(rate: 1, burst: 1))
        #expect(limiter.decide(subject(merchant: "m1"), policy: policy, now: 0) == .admit)
        guard case .refuse(_, let rule) = limiter.decide(subject(merchant: "m2"), policy: policy, now: 0) else {
            Issue.record("the caller's second call at one instant must be refused")
            return
        }
        #expect(rule == .caller)
        #expect(partnerRoom(limiter, policy, now: 0) == 999)
    }

    @Test("a loan given back after its time returns only the admissions still ahead: never more than the exact GCRA")
    func anExpiredLoanReturnsOnlyWhatIsAhead() async {
        let limiter = RateLimiter()
        // A burst of 64 at 1/s lends four admissions at a time.
        let policy = partnerPolicy(burst: 64)
        let second = Self.second
        // Calls at 0 (lane 0), 3.9 s (lane 1) and 3.95 s (lane 0, whose first loan has expired): the exact GCRA then
        // has 62 left at 3.95 s. Giving back all of lane 0's first loan, three slots that had passed, let 64 through.
        _ = await onNewThread(lane: 0) { limiter.decide(subject(merchant: "a"), policy: policy, now: 0) }
        _ = await onNewThread(lane: 1) { limiter.decide(subject(merchant: "b"), policy: policy, now: 39 * second / 10) }
        _ = await onNewThread(lane: 0) { limiter.decide(subject(merchant: "c"), policy: policy, now: 395 * second / 100) }
        let third = await onNewThread(lane: 2) {
            (0..<80).count { limiter.decide(subject(merchant: "d\($0)"), policy: policy, now: 395 * second / 100) == .admit }
        }
        #expect(third <= 62)
        #expect(third >= 55)
    }

    @Test("a loan given back to a TAT that then starts again from now takes nothing off the loans made since")
    func aGiveBackAtTheFloorTakesNothingLater() async {
        let limiter = RateLimiter()
        let policy = partnerPolicy(burst: 32)
        let late = 100 * Self.second
        _ = await onNewThread(lane: 0) { limiter.decide(subject(merchant: "a"), policy: policy, now: 0) }
        _ = await onNewThread(lane: 1) { limiter.decide(subject(merchant: "b"), policy: policy, now: 0) }
        // Lane 0 gives its loan back at 100 s (the key's TAT falls to 100 s) and borrows anew; lane 1's loan from 0
        // must not be taken off that new loan.
        let first = await onNewThread(lane: 0) { limiter.decide(subject(merchant: "c"), policy: policy, now: late) == .admit ? 1 : 0 }
        let rest = await onNewThread(lane: 1) {
            (0..<40).count { limiter.decide(subject(merchant: "d\($0)"), policy: policy, now: late) == .admit }
        }
        // What lane 0 still holds it spends itself; then the burst is spent, exactly.
        let last = await onNewThread(lane: 0) {
            (0..<4).count { limiter.decide(subject(merchant: "e\($0)"), policy: policy, now: late) == .admit }
        }
        #expect(first + rest + last == 32)
    }

    @Test("a reading that brings an older clock gives back nothing that has passed for the calls made since")
    func anOlderNowGivesBackNothingPassed() async {
        let limiter = RateLimiter()
        // 1,000/s with a burst of 64: loans of four, 1 ms apart.
        let policy = partnerPolicy(rate: 1_000, burst: 64)
        let ms = Self.second / 1_000
        _ = await onNewThread(lane: 0) { limiter.decide(subject(merchant: "a"), policy: policy, now: 0) }
        _ = await onNewThread(lane: 1) { limiter.decide(subject(merchant: "b"), policy: policy, now: 5 * ms) }
        // An admin reading whose clock was read at 0.5 ms, before it waited for the locks.
        _ = partnerRoom(limiter, policy, now: ms / 2)
        // The exact GCRA has 63 left at 5 ms after calls at 0 and 5 ms; measured from 0.5 ms, a give-back counted
        // passed slots as ahead and let 64 through.
        let third = await onNewThread(lane: 2) {
            (0..<80).count { limiter.decide(subject(merchant: "c\($0)"), policy: policy, now: 5 * ms) == .admit }
        }
        #expect(third <= 63)
        #expect(third >= 60)
    }

    @Test("threads that call now and then hold no admissions back from a busy one: loans follow each thread's demand")
    func quietLanesLoseNothing() async {
        let limiter = RateLimiter()
        // 1,000/s with a burst of 1,024: loans of 64.
        let policy = partnerPolicy(rate: 1_000, burst: 1_024)
        let ms = Self.second / 1_000
        // Seven threads call once at 0; an eighth calls every 2 ms for 200 ms. Loans of 64 each held back the quiet
        // threads' unspent admissions behind the eighth's, where they could not come back (676 left).
        for lane in 1...7 { _ = await onNewThread(lane: lane) { limiter.decide(subject(merchant: "q\(lane)"), policy: policy, now: 0) } }
        let busy = await onNewThread(lane: 0) {
            (1...100).count { limiter.decide(subject(merchant: "b\($0)"), policy: policy, now: Int64($0) * 2 * ms) == .admit }
        }
        #expect(busy == 100)
        // The exact GCRA, fed the same 107 calls, has 1,023 left at 200 ms.
        let room = partnerRoom(limiter, policy, now: 200 * ms) ?? 0
        #expect(room <= 1_023)
        #expect(room >= 1_016)
    }

    @Test("two threads calling in turn, each less than once a millisecond, keep the whole burst: no loan lapses")
    func alternatingThreadsKeepTheBurst() async {
        let limiter = RateLimiter()
        let policy = partnerPolicy(rate: 1_000, burst: 1_024)
        let ms = Self.second / 1_000
        // One thread in two lanes in turn, a call each millisecond, for 2 s: the exact GCRA keeps 1,023 of room. When
        // a loan doubled after any spent one, the lanes' second admissions lapsed behind the other's loans and the room
        // fell to nothing.
        let admitted = await callsInTurn(limiter, policy, calls: 2_000, every: ms)
        #expect(admitted == 2_000)
        let room = partnerRoom(limiter, policy, now: 2_000 * ms) ?? 0
        #expect(room >= 1_020 && room <= 1_024)
    }

    @Test("two busy threads calling in turn keep the whole burst: loans settle at what each spends within its window")
    func busyThreadsKeepTheBurst() async {
        let limiter = RateLimiter()
        let policy = partnerPolicy(rate: 10_000, burst: 10_000)
        let microsecond = Self.second / 1_000_000
        // Two lanes in turn, a call every 100 µs in all (5,000/s each), for 0.4 s: the exact GCRA keeps its burst.
        // When a loan doubled whenever the last was spent within its window, loans of 8 outgrew what a lane spends in
        // 1 ms, two of each lapsed behind the other lane's loan, and a fifth of the rate was lost.
        let admitted = await callsInTurn(limiter, policy, calls: 4_000, every: 100 * microsecond)
        #expect(admitted == 4_000)
        let room = partnerRoom(limiter, policy, now: 400_000 * microsecond) ?? 0
        #expect(room >= 9_990 && room <= 10_000)
    }
}
