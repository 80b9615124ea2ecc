/// One limit's budget shared by several gateway instances: the ledger's side of quota leasing, as pure arithmetic
/// so that the PostgreSQL statement that runs it can be checked against this definition.
///
/// The cluster-wide state of a key is one GCRA theoretical arrival time (TAT), kept in the shared store. An
/// instance leases `n` admissions at once by advancing the TAT by `n` intervals, exactly as if `n` calls had
/// arrived, but only as many as conform now; it spends them locally without asking again, and gives back what it
/// did not spend by moving the TAT back. Because every admission anywhere was first granted here, the cluster
/// never admits more than one GCRA would: the only cost of leasing is that granted-but-unspent admissions are
/// unavailable to other instances until they are returned (see `QuotaLeaseBook` for how small that is kept).
public enum QuotaLedger {
    /// What the ledger answers to a request for admissions.
    public struct Grant: Sendable, Equatable {
        /// Admissions granted, from 0 to the number requested.
        public var granted: Int
        /// The key's TAT afterwards (unchanged when nothing was granted).
        public var tat: Int64?
        /// When nothing was granted: the earliest time one admission conforms.
        public var nextAt: Int64?
    }

    /// Grants as many of `requested` admissions as conform at `now`; `tat` is nil for a key never used.
    public static func grant(_ gcra: GCRA, tat: Int64?, requested: Int, now: Int64) -> Grant {
        let available = tat.map { gcra.remaining(tat: $0, now: now) } ?? gcra.burst
        let granted = min(max(0, requested), available)
        guard granted > 0 else { return Grant(granted: 0, tat: tat, nextAt: gcra.earliest(tat: tat)) }
        return Grant(granted: granted, tat: max(tat ?? now, now) + Int64(granted) * gcra.interval, nextAt: nil)
    }

    /// The TAT after an instance returns `unused` admissions it was granted and did not spend.
    ///
    /// The TAT never moves back past `now`: admissions whose time has passed are gone, as they are for one
    /// instance's own GCRA.
    public static func giveBack(_ gcra: GCRA, tat: Int64, unused: Int, now: Int64) -> Int64 {
        max(now, tat - Int64(max(0, unused)) * gcra.interval)
    }

    /// The limit one instance enforces on its own when the ledger cannot be reached: an equal share among the
    /// instances seen recently, never less than one call per burst, so a lost store neither fails open nor stops
    /// the gateway.
    public static func fallbackShare(_ gcra: GCRA, instances: Int) -> GCRA {
        let n = max(1, instances)
        return GCRA(rate: gcra.rate / Double(n), burst: max(1, gcra.burst / n))
    }
}
