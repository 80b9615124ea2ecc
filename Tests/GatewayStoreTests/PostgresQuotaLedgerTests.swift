import Foundation
import GatewayCore
import GatewayPostgres
import GatewayStore
import NIOConcurrencyHelpers
import PostgresNIO
import Testing

/// The quota-leasing ledger in a real PostgreSQL: its functions mean exactly `QuotaLedger.grant`/`giveBack`
/// (random inputs through both), grants from several clients at once never exceed one GCRA, and heartbeats count
/// the instances seen within a window.
@Suite struct PostgresQuotaLedgerTests {
    /// A fresh migrated database (through the store, as `serve` does) and a ledger on it.
    static func ledger() async throws -> (url: String, ledger: PostgresQuotaLedger) {
        let location = try await StoreFixture.freshLocation(.postgres)
        let store = try await PostgresStore.open(url: location + "?pool_max=2")
        store.close()
        return (location, try PostgresQuotaLedger(url: try PostgresURL(location)))
    }

    @Test(arguments: StoreKind.postgresOnly)
    func theSQLMeansExactlyQuotaLedger(_ kind: StoreKind) async throws {
        let (url, ledger) = try await Self.ledger()
        defer { ledger.close() }
        let seed = UInt64(Date().timeIntervalSince1970)
        var random = SeededGenerator(seed: seed)
        let key = RateLimitKey(rule: .merchant, first: "m'1\"", second: "payment-request-management")
        try await PostgresAdmin.withClient(url: url) { client in
            func plant(_ tat: Int64?) async throws {
                try await client.query("DELETE FROM quota_ledger")
                if let tat {
                    try await client.query(
                        "INSERT INTO quota_ledger (rule_name, key_first, key_second, tat_ns) VALUES (\(key.rule.rawValue), \(key.first), \(key.second), \(tat))")
                }
            }
            for index in 0..<250 {
                let gcra = GCRA(rate: [0.5, 1, 3, 20, 25, 333, 2_000][Int.random(in: 0..<7, using: &random)], burst: Int.random(in: 1...40, using: &random))
                let now = Int64.random(in: 1_000_000_000_000_000...2_000_000_000_000_000, using: &random)
                let tat: Int64? = Bool.random(using: &random) && index % 7 != 0
                    ? now + Int64.random(in: -3 * gcra.tolerance - 5_000_000_000...3 * gcra.tolerance + 5_000_000_000, using: &random)
                    : nil
                let requested = Int.random(in: -1...(gcra.burst + 5), using: &random)
                try await plant(tat)
                let answer = try await ledger.grant(key, gcra, requested: requested, now: now)
                let stored = try await ledger.tat(key)
                let expected = QuotaLedger.grant(gcra, tat: tat, requested: requested, now: now)
                let what = "seed \(seed) case \(index): \(gcra), tat \(String(describing: tat)), requested \(requested), now \(now)"
                #expect(answer.granted == expected.granted, "\(what)")
                let expectedWait = expected.granted > 0 ? 0 : max(now, expected.nextAt ?? now) - now
                #expect(answer.wait == expectedWait, "\(what)")
                // A missing row and a TAT in the past mean the same (a full burst); compare what they mean.
                #expect(max(stored ?? now, now) == max(expected.tat ?? now, now), "\(what)")

                let unused = Int.random(in: -1...(gcra.burst + 3), using: &random)
                let later = now + Int64.random(in: 0...2 * gcra.interval, using: &random)
                let before = try #require(stored)
                try await ledger.giveBack(key, gcra, unused: unused, now: later)
                #expect(try await ledger.tat(key) == QuotaLedger.giveBack(gcra, tat: before, unused: unused, now: later), "give back: \(what), unused \(unused) at \(later)")
            }
            // Giving back to a key the ledger forgot (swept) changes nothing: no row means a full burst already.
            try await plant(nil)
            try await ledger.giveBack(key, GCRA(rate: 10, burst: 5), unused: 3, now: 0)
            #expect(try await ledger.tat(key) == nil)
        }
    }

    @Test(arguments: StoreKind.postgresOnly)
    func concurrentGrantsFromSeveralClientsNeverExceedOneGCRA(_ kind: StoreKind) async throws {
        let (url, first) = try await Self.ledger()
        var ledgers = [first]
        for _ in 0..<3 { ledgers.append(try PostgresQuotaLedger(url: try PostgresURL(url))) }
        defer { for ledger in ledgers { ledger.close() } }
        let gcra = GCRA(rate: 100, burst: 10)
        let key = RateLimitKey(rule: .global, first: "", second: "")
        // Connections are opened before the clock starts, so the window measures grants only.
        for ledger in ledgers { _ = try await ledger.serverNow() }
        let start = try await first.serverNow()
        let deadline = ContinuousClock.now + .seconds(2)
        // A bound on liveness, not a timing assertion: under the full suite's load the first grants once took longer
        // than the window, so the clients go on past it until the burst is granted (or a minute has passed).
        let giveUp = ContinuousClock.now + .seconds(60)
        let total = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for ledger in ledgers {
                for _ in 0..<3 {
                    group.addTask {
                        while ContinuousClock.now < deadline || (total.withLockedValue { $0 } < gcra.burst && ContinuousClock.now < giveUp) {
                            let grant = try await ledger.grant(key, gcra, requested: 3)
                            total.withLockedValue { $0 += grant.granted }
                            if grant.granted == 0 { try await Task.sleep(for: .nanoseconds(min(grant.wait, 5_000_000))) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let end = try await first.serverNow()
        let granted = total.withLockedValue { $0 }
        // One GCRA over [start, end] on the server's clock: a burst, then one per interval.
        let ceiling = gcra.burst + Int((end - start) / gcra.interval)
        // How close the clients come depends on how much CPU they get: printed, not asserted.
        print("concurrent grants: \(granted) granted by 12 clients over \(Double(end - start) / 1e9) s; one GCRA allows \(ceiling)")
        #expect(granted <= ceiling)
        #expect(granted >= gcra.burst, "the first asks get at least the burst")
    }

    @Test(arguments: StoreKind.postgresOnly)
    func heartbeatsCountTheInstancesSeenWithinTheWindow(_ kind: StoreKind) async throws {
        let (_, ledger) = try await Self.ledger()
        defer { ledger.close() }
        let minute: Int64 = 60_000_000_000
        #expect(try await ledger.heartbeat(node: "gw-a", window: minute) == 1)
        #expect(try await ledger.heartbeat(node: "gw-b", window: minute) == 2)
        #expect(try await ledger.heartbeat(node: "gw-a", window: minute) == 2, "a node counts once however often it beats")
        #expect(try await ledger.heartbeat(node: "gw-c", window: minute) == 3)
        try await Task.sleep(for: .milliseconds(300))
        // With a 200 ms window, only the instance beating now is seen.
        #expect(try await ledger.heartbeat(node: "gw-c", window: 200_000_000) == 1)
        try await ledger.sweep()
        #expect(try await ledger.heartbeat(node: "gw-a", window: minute) == 3, "the sweep forgets only instances gone for a day")
    }

    @Test(arguments: StoreKind.postgresOnly)
    func theSweepForgetsOnlyKeysWhoseTimeHasPassed(_ kind: StoreKind) async throws {
        let (_, ledger) = try await Self.ledger()
        defer { ledger.close() }
        // One admission per 1,000 s: the spent key stays spent however slowly this test runs.
        let gcra = GCRA(rate: 0.001, burst: 2)
        let spent = RateLimitKey(rule: .merchant, first: "m1", second: "c")
        let idle = RateLimitKey(rule: .merchant, first: "m2", second: "c")
        #expect(try await ledger.grant(spent, gcra, requested: 2).granted == 2)
        let now = try await ledger.serverNow()
        _ = try await ledger.grant(idle, gcra, requested: 1, now: now - 10_000_000_000_000)
        try await ledger.sweep()
        #expect(try await ledger.tat(spent) != nil)
        #expect(try await ledger.tat(idle) == nil)
        let again = try await ledger.grant(spent, gcra, requested: 1)
        #expect(again.granted == 0 && again.wait > 0, "the sweep kept the spent key's state")
    }
}
