/// One key's room as the limiter keeps it, for the admin API's `rate-limits` resources.
public struct RateLimitRoom: Sendable, Equatable {
    /// The key, as the limiter (and in cluster mode the shared ledger) holds it.
    public let key: RateLimitKey
    /// The rule the key belongs to.
    public let rule: RateLimitRule
    /// The key's second part: Klarna's rate-limit category for `merchant` and `partner`, empty for `caller`.
    public let category: String
    /// The limit in force for the key; nil when the rule sets none (a hold learned from Klarna may still apply).
    public let limit: GCRA?
    /// Calls admissible now, 0 to the burst; nil without a limit, or in cluster mode until read from the shared
    /// ledger (`fromLedger`), since this instance alone does not know the others' use.
    public let remaining: Int?
    /// Nanoseconds until the key is back to a full burst (0 when it is, or when unknown).
    public let resetAfter: Int64
    /// Nanoseconds a hold learned from Klarna (a 429's `Retry-After`) still keeps the key's calls back; 0 for none.
    public let heldFor: Int64

    /// The same key's room in the whole cluster, from the shared ledger: admissions no instance has leased yet,
    /// and the time until the ledger is back to a full burst. A key the ledger does not hold has a full burst.
    public func fromLedger(_ reading: QuotaLedgerReading) -> RateLimitRoom {
        guard let limit else { return self }
        let tat = reading.tats[key]
        return RateLimitRoom(
            key: key, rule: rule, category: category, limit: limit,
            remaining: tat.map { limit.remaining(tat: $0, now: reading.now) } ?? limit.burst,
            resetAfter: tat.map { limit.resetAfter(tat: $0, now: reading.now) } ?? 0, heldFor: heldFor)
    }
}

extension RateLimiter {
    /// The room at `now` of the keys `subjects` would use under `rules`, resolved as `decide` resolves them.
    ///
    /// Only for the admin API, only when asked: each key is looked up once in the TATs and holds the limiter keeps
    /// anyway, and nothing is written but loans given back. The shared keys and the holds are read under one lock;
    /// each merchant key under its stripe's, after it, so keys of different stripes are read moments apart. A key
    /// never used (or forgotten by `sweep` once back to a full burst) reads as a full burst. Keys the request path
    /// would need a scan of the whole map to find (`caller_merchant` by caller or merchant alone) are not answered
    /// here.
    public func room(_ subjects: [RateLimitSubject], rules: Set<RateLimitRule>, policy: RateLimitPolicy, now: Int64) -> [RateLimitRoom] {
        var limits: [Applicable] = []
        for subject in subjects {
            for limit in applicable(subject, policy) where rules.contains(limit.rule) && !limits.contains(where: { $0.key == limit.key }) {
                limits.append(limit)
            }
        }
        // The shared keys' TATs after what can come back of the lanes' loans of them has; loans still held count as used.
        var (tats, holds) = lanes.withAll { lanes in
            state.withLock { state in
                var tats = [Int64?](repeating: nil, count: limits.count)
                var holds = [Int64?](repeating: nil, count: limits.count)
                for index in limits.indices {
                    if !limits[index].rule.isPerMerchant {
                        state.reclaim(limits[index].key, from: lanes, now: now)
                        tats[index] = state.tats[limits[index].key]
                    }
                    holds[index] = state.holds[limits[index].key]
                }
                return (tats, holds)
            }
        }
        for index in limits.indices where limits[index].rule.isPerMerchant { tats[index] = stripes.tat(limits[index].key) }
        return limits.indices.map { index in
            let limit = limits[index]
            let tat = isClustered ? nil : tats[index]
            return RateLimitRoom(
                key: limit.key, rule: limit.rule, category: limit.key.second, limit: limit.gcra,
                remaining: isClustered ? nil : limit.gcra.map { gcra in tat.map { gcra.remaining(tat: $0, now: now) } ?? gcra.burst },
                resetAfter: tat.flatMap { tat in limit.gcra.map { $0.resetAfter(tat: tat, now: now) } } ?? 0,
                heldFor: holds[index].map { max(0, $0 - now) } ?? 0)
        }
    }
}
