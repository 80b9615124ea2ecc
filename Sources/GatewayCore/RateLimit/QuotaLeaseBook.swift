/// One instance's side of quota leasing: the admissions it holds per key, when to ask the ledger for more, what to
/// give back, and what to do when the ledger is out of reach. A value type that returns actions (ask, give back)
/// and performs none, so every rule is tested with a hand-driven clock and no database.
///
/// Lease sizes follow demand but never exceed `horizon` worth of the key's rate, so all instances together hold
/// back at most `instances × rate × horizon` admissions: with the default 100 ms and 3 instances, 0.3 s of a
/// limit's rate, and only while demand is below the limit (above it, held admissions are spent at once).
public struct QuotaLeaseBook<Key: Hashable & Sendable>: Sendable {
    /// Tuning, in nanoseconds.
    public struct Settings: Sendable, Equatable {
        /// How much of a key's expected demand one lease covers; bounds what an instance holds back.
        public var horizon: Int64
        /// Unspent admissions go back to the ledger this long after their lease was granted.
        public var lifetime: Int64
        /// While the ledger is unreachable, each instance enforces `limit / instances` on its own.
        public var instances: Int

        /// Makes settings; the defaults suit limits from a few to thousands of calls per second.
        public init(horizon: Int64 = 100_000_000, lifetime: Int64 = 1_000_000_000, instances: Int = 1) {
            self.horizon = horizon
            self.lifetime = lifetime
            self.instances = instances
        }
    }

    /// What the caller should do about one call.
    public enum Decision: Sendable, Equatable {
        /// Forward: an admission was spent.
        case admit
        /// No admission is held but one has been asked for: park the call until `granted` or `failed`, then
        /// decide again.
        case wait
        /// The ledger has nothing before this many nanoseconds: refuse with a matching `Retry-After`.
        case refuse(retryAfter: Int64)
    }

    /// Work for the caller's ledger client.
    public enum Action: Sendable, Equatable {
        /// Ask the ledger for `count` admissions of `key` (`QuotaLedger.grant`).
        case acquire(Key, count: Int)
        /// Give `count` unspent admissions of `key` back (`QuotaLedger.giveBack`).
        case release(Key, count: Int)
    }

    struct Entry: Sendable {
        var credits = 0
        var grantedAt: Int64 = 0
        var pending = false
        /// Until when the ledger said nothing conforms.
        var emptyUntil = Int64.min
        /// Calls seen per second, smoothed: sizes the next lease.
        var demand = 0.0
        var lastSeen: Int64 = 0
        /// The local limit used while the ledger is unreachable (fallback), as a GCRA TAT.
        var fallbackTAT: Int64?
    }

    /// Tuning in force.
    public var settings: Settings
    /// True while the ledger cannot be reached: calls are decided by each key's local share.
    public private(set) var fallback = false
    private var entries: [Key: Entry] = [:]

    /// An empty book.
    public init(settings: Settings = Settings()) { self.settings = settings }

    /// Decides one call for `key` under `gcra` (the cluster-wide limit) at `now`; may ask for a lease.
    public mutating func take(_ key: Key, _ gcra: GCRA, now: Int64) -> (Decision, Action?) {
        var entry = entries[key] ?? Entry()
        defer { entries[key] = entry }
        observe(&entry, now: now)
        if fallback {
            let share = QuotaLedger.fallbackShare(gcra, instances: settings.instances)
            let earliest = share.earliest(tat: entry.fallbackTAT)
            guard earliest <= now else { return (.refuse(retryAfter: earliest - now), nil) }
            entry.fallbackTAT = share.advance(tat: entry.fallbackTAT, at: now)
            return (.admit, nil)
        }
        let size = leaseSize(entry, gcra)
        if entry.credits > 0 {
            entry.credits -= 1
            // Ask ahead at half a lease, so that a steady caller never waits for the ledger.
            if entry.credits * 2 <= size, !entry.pending, now >= entry.emptyUntil {
                entry.pending = true
                return (.admit, .acquire(key, count: size))
            }
            return (.admit, nil)
        }
        if now < entry.emptyUntil { return (.refuse(retryAfter: entry.emptyUntil - now), nil) }
        if entry.pending { return (.wait, nil) }
        entry.pending = true
        return (.wait, .acquire(key, count: size))
    }

    /// The ledger granted `count` admissions; `nextAt` is when the next one conforms if it granted none.
    public mutating func granted(_ key: Key, count: Int, nextAt: Int64?, now: Int64) {
        var entry = entries[key] ?? Entry()
        entry.pending = false
        entry.credits += max(0, count)
        entry.grantedAt = now
        entry.emptyUntil = count > 0 ? Int64.min : (nextAt ?? now)
        entries[key] = entry
    }

    /// Puts back an admission `take` spent for a call that another rule then refused or made wait, so a call
    /// that does not go ahead uses nothing.
    public mutating func refund(_ key: Key) {
        entries[key]?.credits += 1
    }

    /// The ledger could not be asked: the caller should decide parked calls again (they will wait or refuse
    /// by the local share once `enterFallback` is called).
    public mutating func failed(_ key: Key) {
        entries[key]?.pending = false
    }

    /// The ledger is unreachable: decide by local shares until `leaveFallback`. Admissions already held stay
    /// valid but are not spent, so a flapping store cannot double a key's budget.
    public mutating func enterFallback() { fallback = true }

    /// The ledger is back: leases again; the local shares' state is dropped.
    public mutating func leaveFallback() {
        fallback = false
        for key in entries.keys { entries[key]?.fallbackTAT = nil }
    }

    /// Leases past their lifetime give their unspent admissions back; keys idle for a lifetime are forgotten.
    public mutating func expire(now: Int64) -> [Action] {
        var actions: [Action] = []
        for (key, entry) in entries {
            guard now - entry.grantedAt >= settings.lifetime, !entry.pending else { continue }
            if entry.credits > 0 {
                actions.append(.release(key, count: entry.credits))
                entries[key]?.credits = 0
            }
            if now - entry.lastSeen >= settings.lifetime, entry.fallbackTAT.map({ $0 <= now }) ?? true {
                entries[key] = nil
            }
        }
        return actions
    }

    /// Admissions held for `key` (for tests and metrics).
    public func credits(_ key: Key) -> Int { entries[key]?.credits ?? 0 }

    /// Keys the book remembers.
    public var trackedKeys: Int { entries.count }

    /// Smooths calls per second over about a lease horizon.
    private func observe(_ entry: inout Entry, now: Int64) {
        let gap = max(1, now - entry.lastSeen)
        let instant = 1e9 / Double(gap)
        let weight = min(1, Double(gap) / Double(max(1, settings.horizon)))
        entry.demand = entry.lastSeen == 0 ? 1e9 / Double(max(1, settings.horizon)) : entry.demand + weight * (instant - entry.demand)
        entry.lastSeen = now
    }

    /// Demand over one horizon, at least one call, at most the limit's rate over one horizon.
    private func leaseSize(_ entry: Entry, _ gcra: GCRA) -> Int {
        let seconds = Double(settings.horizon) / 1e9
        let cap = max(1, Int(gcra.rate * seconds))
        return min(cap, max(1, Int((entry.demand * seconds).rounded(.up))))
    }
}
