/// Cluster mode's decision for one call, as a value type that returns ledger work and performs none: every
/// enforced limit with a GCRA is spent from admissions leased from the shared ledger (`QuotaLeaseBook`), holds
/// learned from Klarna's 429s stay local, and shadow rules are judged against this instance's share of the limit.
///
/// The decision stays atomic across rules: an admission taken for one rule is put back when another rule refuses
/// the call or makes it wait, so a call that does not go ahead uses nothing.
public struct ClusterLimits: Sendable {
    /// Tuning.
    public struct Settings: Sendable, Equatable {
        /// Lease sizes, lifetimes and the fallback share's instance count.
        public var lease: QuotaLeaseBook<QuotaLeaseKey>.Settings
        /// The longest a call may stay parked for leases, nanoseconds: a backstop only, since the ledger client's
        /// timeout wakes parked calls (into the fallback share) well before.
        public var maxPark: Int64

        /// Makes settings; a parked call is refused after 5 s at the latest.
        public init(lease: QuotaLeaseBook<QuotaLeaseKey>.Settings = .init(), maxPark: Int64 = 5_000_000_000) {
            self.lease = lease
            self.maxPark = maxPark
        }
    }

    /// What to do with the call.
    enum Outcome: Equatable {
        /// Forward now: every enforced limit spent an admission.
        case admit
        /// No lease for this key yet: park until it settles, then decide again.
        case park(QuotaLeaseKey)
        /// Shaping: decide again after this many nanoseconds (nothing is reserved meanwhile).
        case retry(after: Int64)
        /// Refuse, attributed to `limits[index]`, with this wait for `Retry-After`.
        case refuse(index: Int, wait: Int64)
    }

    /// The leases this instance holds.
    public internal(set) var book: QuotaLeaseBook<QuotaLeaseKey>
    /// Shadow rules' local TATs under this instance's share.
    var shadowTATs: [RateLimitKey: Int64] = [:]
    /// Tuning in force.
    public let settings: Settings

    /// An empty book.
    public init(settings: Settings = Settings()) {
        self.settings = settings
        self.book = QuotaLeaseBook(settings: settings.lease)
    }

    /// Decides one call first seen at `since` against `limits` (every rule that applies to it, in attribution
    /// order), with `room` false when the queue of waiting calls is full. Counts go to `counts` as in local mode.
    mutating func decide(
        _ limits: UnsafeBufferPointer<RateLimiter.Applicable>, holds: [RateLimitKey: Int64], room: Bool, now: Int64, since: Int64,
        counts: inout RuleCounts
    ) -> (Outcome, [QuotaLeaseAction]) {
        let waited = max(0, now - since)
        let holdWaits = limits.map { limit in holds[limit.key].map { max(0, $0 - now) } ?? 0 }
        // Klarna asked this instance to hold the key: waiting or refusing costs no lease.
        if let decider = limits.indices.first(where: { !limits[$0].shadow && holdWaits[$0] > 0 }) {
            let wait = limits.indices.filter { !limits[$0].shadow }.map { holdWaits[$0] }.max() ?? 0
            let holding = limits.indices.filter { !limits[$0].shadow && holdWaits[$0] > 0 }
            if room && holding.allSatisfy({ limits[$0].maxDelay >= waited + wait }) {
                for index in holding { counts[limits[index].rule].delayed += 1 }
                return (.retry(after: wait), [])
            }
            counts[limits[decider].rule].refused += 1
            return (.refuse(index: decider, wait: holdWaits[decider]), [])
        }

        var actions: [QuotaLeaseAction] = []
        var spent: [QuotaLeaseKey] = []
        var parkOn: (index: Int, key: QuotaLeaseKey)?
        var refusals: [(index: Int, wait: Int64)] = []
        for (index, limit) in limits.enumerated() where !limit.shadow {
            guard let gcra = limit.gcra else { continue }
            let key = QuotaLeaseKey(limit: limit.key, gcra: gcra)
            let (decision, action) = book.take(key, gcra, now: now)
            if let action { actions.append(action) }
            switch decision {
            case .admit: spent.append(key)
            case .wait: if parkOn == nil { parkOn = (index, key) }
            case .refuse(let wait): refusals.append((index, wait))
            }
        }
        if parkOn != nil || !refusals.isEmpty {
            for key in spent { book.refund(key) }
        }
        if let first = refusals.first {
            let wait = refusals.map(\.wait).max() ?? first.wait
            if room && refusals.allSatisfy({ limits[$0.index].maxDelay >= waited + wait }) {
                for refusal in refusals { counts[limits[refusal.index].rule].delayed += 1 }
                return (.retry(after: wait), actions)
            }
            counts[limits[first.index].rule].refused += 1
            return (.refuse(index: first.index, wait: first.wait), actions)
        }
        if let parkOn {
            guard room, waited < settings.maxPark else {
                counts[limits[parkOn.index].rule].refused += 1
                return (.refuse(index: parkOn.index, wait: 1_000_000_000), actions)
            }
            return (.park(parkOn.key), actions)
        }

        for (index, limit) in limits.enumerated() {
            guard limit.shadow else {
                counts[limit.rule].admitted += 1
                continue
            }
            // A shadow rule never acts, so it asks the ledger for nothing: this instance's share is its estimate.
            var conforms = holdWaits[index] == 0
            if conforms, let gcra = limit.gcra {
                let share = QuotaLedger.fallbackShare(gcra, instances: book.settings.instances)
                if share.earliest(tat: shadowTATs[limit.key]) > now {
                    conforms = false
                } else {
                    shadowTATs[limit.key] = share.advance(tat: shadowTATs[limit.key], at: now)
                }
            }
            if conforms {
                counts[limit.rule].admitted += 1
            } else {
                counts[limit.rule].shadowRefused += 1
            }
        }
        return (.admit, actions)
    }

    /// Forgets shadow TATs back to a full burst.
    mutating func sweep(now: Int64) {
        shadowTATs = shadowTATs.filter { $0.value > now }
    }

    /// Keys remembered.
    var trackedKeys: Int { book.trackedKeys + shadowTATs.count }
}
