import Testing
@testable import GatewayCore

@Suite struct QuotaLedgerTests {
    let limit = GCRA(rate: 10, burst: 5)  // an admission every 100 ms, 5 at once
    let ms: Int64 = 1_000_000

    @Test func aFreshKeyGrantsAtMostOneBurst() {
        let grant = QuotaLedger.grant(limit, tat: nil, requested: 8, now: 0)
        #expect(grant.granted == 5)
        #expect(grant.nextAt == nil)
        let next = QuotaLedger.grant(limit, tat: grant.tat, requested: 1, now: 0)
        #expect(next.granted == 0)
        #expect(next.nextAt == 100 * ms)  // the TAT is 500 ms, the tolerance 400 ms
        #expect(QuotaLedger.grant(limit, tat: grant.tat, requested: 3, now: 250 * ms).granted == 2)
    }

    @Test func givingBackRestoresWhatWasNotSpentButNotThePast() {
        let grant = QuotaLedger.grant(limit, tat: nil, requested: 5, now: 0)
        let tat = try! #require(grant.tat)
        #expect(QuotaLedger.giveBack(limit, tat: tat, unused: 2, now: 0) == 300 * ms)
        #expect(QuotaLedger.grant(limit, tat: QuotaLedger.giveBack(limit, tat: tat, unused: 2, now: 0), requested: 9, now: 0).granted == 2)
        // Returned after its time has passed, an admission is gone: the TAT never goes below now.
        #expect(QuotaLedger.giveBack(limit, tat: tat, unused: 5, now: 450 * ms) == 450 * ms)
    }

    @Test func theFallbackShareSplitsRateAndBurst() {
        let share = QuotaLedger.fallbackShare(GCRA(rate: 30, burst: 9), instances: 3)
        #expect(share.rate == 10 && share.burst == 3)
        #expect(QuotaLedger.fallbackShare(GCRA(rate: 30, burst: 2), instances: 3).burst == 1)
        #expect(QuotaLedger.fallbackShare(GCRA(rate: 30, burst: 9), instances: 0).rate == 30)
    }

    @Test func aKeyIdleSinceLongAgoHoldsOneBurstNotTheTimeItWasIdle() {
        // A TAT in the past counts as now: remaining never exceeds the burst, and neither does a grant.
        #expect(limit.remaining(tat: -10_000 * ms, now: 0) == 5)
        #expect(limit.remaining(tat: 0, now: 0) == 5)
        let grant = QuotaLedger.grant(limit, tat: -10_000 * ms, requested: 50, now: 0)
        #expect(grant.granted == 5)
        #expect(grant.tat == 500 * ms)
        #expect(grant == QuotaLedger.grant(limit, tat: nil, requested: 50, now: 0))
    }

    @Test func remainingDoesNotCountACallNotYetDue() {
        // 50 ms before the next call conforms nothing remains (division toward zero once said 1).
        #expect(limit.remaining(tat: 450 * ms, now: 0) == 0)
        #expect(limit.remaining(tat: 400 * ms, now: 0) == 1)
    }
}

@Suite struct QuotaLeaseBookTests {
    let limit = GCRA(rate: 100, burst: 20)
    let ms: Int64 = 1_000_000

    @Test func aColdKeyWaitsForItsFirstLeaseThenSpendsIt() {
        var book = QuotaLeaseBook<String>()
        let (first, ask) = book.take("m1", limit, now: 0)
        #expect(first == .wait)
        guard case .acquire("m1", let count)? = ask else { Issue.record("no acquire: \(String(describing: ask))"); return }
        #expect(count >= 1 && count <= 10)  // at most 100 ms of a 100/s limit
        // A second call before the answer waits without asking twice.
        #expect(book.take("m1", limit, now: 1 * ms) == (.wait, nil))
        book.granted("m1", count: count, nextAt: nil, now: 2 * ms)
        #expect(book.take("m1", limit, now: 3 * ms).0 == .admit)
        #expect(book.credits("m1") == count - 1)
    }

    @Test func itAsksAheadAtHalfALeaseSoASteadyCallerNeverWaits() {
        var book = QuotaLeaseBook<String>()
        var now: Int64 = 0
        _ = book.take("m1", limit, now: now)
        book.granted("m1", count: 10, nextAt: nil, now: now)
        var asked: [Int] = []
        var waits = 0
        // 50 calls/s, the ledger answering within 1 ms.
        for _ in 0..<200 {
            now += 20 * ms
            let (decision, action) = book.take("m1", limit, now: now)
            if decision == .wait { waits += 1 }
            if case .acquire(_, let count)? = action {
                asked.append(count)
                book.granted("m1", count: count, nextAt: nil, now: now + ms)
            }
        }
        #expect(waits == 0)
        #expect(!asked.isEmpty)
        #expect(asked.allSatisfy { $0 <= 10 })
    }

    @Test func anEmptyLedgerRefusesUntilItsNextAdmission() {
        var book = QuotaLeaseBook<String>()
        _ = book.take("m1", limit, now: 0)
        book.granted("m1", count: 0, nextAt: 30 * ms, now: 0)
        #expect(book.take("m1", limit, now: 10 * ms) == (.refuse(retryAfter: 20 * ms), nil))
        let (decision, action) = book.take("m1", limit, now: 30 * ms)
        #expect(decision == .wait)
        #expect(action != nil)
    }

    @Test func unspentAdmissionsGoBackAfterTheLifetimeAndIdleKeysAreForgotten() {
        var book = QuotaLeaseBook<String>(settings: .init(horizon: 100 * ms, lifetime: 1_000 * ms))
        _ = book.take("m1", limit, now: 0)
        book.granted("m1", count: 8, nextAt: nil, now: 0)
        _ = book.take("m1", limit, now: 1 * ms)
        #expect(book.expire(now: 500 * ms).isEmpty)
        #expect(book.expire(now: 1_001 * ms) == [.release("m1", count: 7)])
        #expect(book.credits("m1") == 0)
        #expect(book.trackedKeys == 0)
    }

    @Test func withoutTheLedgerEachInstanceKeepsToItsShare() {
        var book = QuotaLeaseBook<String>(settings: .init(instances: 4))
        _ = book.take("m1", limit, now: 0)
        book.granted("m1", count: 5, nextAt: nil, now: 0)
        book.enterFallback()
        // 100/s and a burst of 20 split four ways: 25/s with a burst of 5; held admissions are not spent on top.
        var admitted = 0
        for tick in 0..<1_000 where book.take("m1", limit, now: Int64(tick) * ms).0 == .admit { admitted += 1 }
        #expect(admitted == 5 + 24)  // the burst at once, then one per 40 ms over the remaining 960 ms
        #expect(book.credits("m1") == 5)
        book.leaveFallback()
        #expect(book.take("m1", limit, now: 1_000 * ms).0 == .admit)
    }

    /// Three instances share one ledger, each offered 5x the whole limit: the cluster admits what one GCRA
    /// would, within 5%, and never more. The ledger answers after a delay, as a database would.
    @Test(arguments: [(rate: 25.0, burst: 5), (rate: 500.0, burst: 100)])
    func threeInstancesTogetherHoldTheLimit(rate: Double, burst: Int) {
        let gcra = GCRA(rate: rate, burst: burst)
        let latency: Int64 = 3 * ms
        let seconds: Int64 = 20
        var ledgerTAT: Int64?
        var books = (0..<3).map { _ in QuotaLeaseBook<String>(settings: .init(instances: 3)) }
        var inFlight: [(due: Int64, instance: Int, count: Int)] = []
        var admitted = 0
        let perInstanceGap = Int64(1e9 / (rate * 5))  // each instance alone is offered 5x the limit
        var nextCall = [0, perInstanceGap / 3, 2 * perInstanceGap / 3]
        var now: Int64 = 0
        let end = seconds * 1_000_000_000
        while now < end {
            // Answer the ledger requests that are due, in order.
            inFlight.sort { $0.due < $1.due }
            while let first = inFlight.first, first.due <= now {
                inFlight.removeFirst()
                let grant = QuotaLedger.grant(gcra, tat: ledgerTAT, requested: first.count, now: first.due)
                ledgerTAT = grant.tat
                books[first.instance].granted("k", count: grant.granted, nextAt: grant.nextAt, now: first.due)
            }
            for instance in 0..<3 where nextCall[instance] <= now {
                nextCall[instance] += perInstanceGap
                let (decision, action) = books[instance].take("k", gcra, now: now)
                if decision == .admit { admitted += 1 }
                if case .acquire(_, let count)? = action { inFlight.append((now + latency, instance, count)) }
            }
            for instance in 0..<3 {
                for case .release(_, let count) in books[instance].expire(now: now) {
                    ledgerTAT = QuotaLedger.giveBack(gcra, tat: ledgerTAT ?? now, unused: count, now: now)
                }
            }
            now += ms / 4
        }
        let ideal = rate * Double(seconds) + Double(burst)
        #expect(Double(admitted) <= ideal)
        #expect(Double(admitted) >= 0.95 * ideal, "admitted \(admitted) of \(ideal)")
    }
}
