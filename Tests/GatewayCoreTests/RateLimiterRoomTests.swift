import GatewayCore
import Testing

/// `RateLimiter.room`, the admin API's read of the limiter: what the decisions left, at an injected clock.
@Suite("Rate limits: room read for the admin API")
struct RateLimiterRoomTests {
    static let second: Int64 = 1_000_000_000
    let m1 = RateLimitSubject(callerID: "checkout", merchantID: "m1", merchantGroups: [], partnerID: "acq", environment: .test, category: "payment-transaction-management")
    let policy = RateLimitPolicy(merchant: [.test: CategoryLimits(default: LimitSpec(rate: 10, burst: 5))], caller: LimitSpec(rate: 1, burst: 4))

    @Test("room follows admissions and refills at the rate; only the rules asked for; a hold shows; nothing is spent by reading")
    func local() {
        let limiter = RateLimiter()
        for _ in 0..<3 { #expect(limiter.decide(m1, policy: policy, now: 0) == .admit) }
        let merchant = limiter.room([m1], rules: [.merchant], policy: policy, now: 0)
        #expect(merchant.map(\.rule) == [.merchant])
        #expect(merchant.first?.category == "payment-transaction-management")
        #expect(merchant.first?.remaining == 2)
        #expect(merchant.first?.resetAfter == 3 * Self.second / 10)
        #expect(merchant.first?.heldFor == 0)
        // Reading again spends nothing; 100 ms later one more fits.
        #expect(limiter.room([m1], rules: [.merchant], policy: policy, now: 0).first?.remaining == 2)
        #expect(limiter.room([m1], rules: [.merchant], policy: policy, now: Self.second / 10).first?.remaining == 3)
        let caller = limiter.room([m1], rules: [.caller], policy: policy, now: 0)
        #expect(caller.map(\.rule) == [.caller] && caller.first?.remaining == 1 && caller.first?.category == "")
        // A merchant never seen has its full burst.
        var m2 = m1
        m2.merchantID = "m2"
        #expect(limiter.room([m2], rules: [.merchant], policy: policy, now: 0).first?.remaining == 5)

        limiter.hold(m1, until: 2 * Self.second)
        #expect(limiter.room([m1], rules: [.merchant], policy: policy, now: Self.second).first?.heldFor == Self.second)
        #expect(limiter.room([m2], rules: [.merchant], policy: policy, now: Self.second).first?.heldFor == 0)
    }

    @Test("in cluster mode room is not known locally: remaining is nil; holds still show")
    func clustered() {
        let limiter = RateLimiter(cluster: ClusterLimits.Settings())
        limiter.hold(m1, until: Self.second)
        let room = limiter.room([m1], rules: [.merchant], policy: policy, now: 0)
        #expect(room.count == 1)
        #expect(room.first?.remaining == nil)
        #expect(room.first?.limit == GCRA(rate: 10, burst: 5))
        #expect(room.first?.heldFor == Self.second)
    }

    @Test("the cluster's room from the ledger's reading: its TAT on its clock, a key it does not hold at a full burst, the hold kept")
    func fromLedger() throws {
        let limiter = RateLimiter(cluster: ClusterLimits.Settings())
        limiter.hold(m1, until: Self.second)
        let room = try #require(limiter.room([m1], rules: [.merchant], policy: policy, now: 0).first)
        // The ledger's clock is its own: 3 admissions leased at 500 s put the TAT 300 ms past it.
        let ledgerNow = 500 * Self.second
        let read = room.fromLedger(QuotaLedgerReading(now: ledgerNow, tats: [room.key: ledgerNow + 3 * Self.second / 10]))
        #expect(read.remaining == 2)
        #expect(read.resetAfter == 3 * Self.second / 10)
        #expect(read.heldFor == Self.second && read.key == room.key && read.limit == room.limit)
        let untouched = room.fromLedger(QuotaLedgerReading(now: ledgerNow, tats: [:]))
        #expect(untouched.remaining == 5 && untouched.resetAfter == 0)
        // A key whose TAT passed has a full burst again.
        #expect(room.fromLedger(QuotaLedgerReading(now: ledgerNow, tats: [room.key: ledgerNow - Self.second])).remaining == 5)
    }
}
