/// One key a rule held back recently or holds back now, for the admin API's "who is throttled now".
public struct RateLimitThrottle: Sendable, Equatable {
    /// The key: its rule and parts (merchant, partner or caller id; category or merchant id).
    public let key: RateLimitKey
    /// The limit that throttled the key when it last did; nil for a key only Klarna's hold keeps back.
    public let limit: GCRA?
    /// Calls admissible now, 0 to the burst; nil without a limit, or in cluster mode (the others' use is unknown).
    public let remaining: Int?
    /// Nanoseconds until the next call conforms to the limit and any hold (0: it would pass now).
    public let retryAfter: Int64
    /// Nanoseconds a hold learned from Klarna still keeps the key's calls back; 0 for none.
    public let heldFor: Int64
    /// Nanoseconds until the key is back to a full burst (0 when it is, or when unknown).
    public let resetAfter: Int64
    /// Calls the key's rule refused since the key began to be throttled (a quiet window starts the count anew).
    public let refused: Int
    /// Calls the key's rule made wait (shaping), counted as `refused` is.
    public let delayed: Int
    /// Nanoseconds since the rule last refused or delayed a call for the key; nil when only a hold is known.
    public let sinceLast: Int64?

    /// True while a call for the key would be refused or made to wait.
    public var throttledNow: Bool { retryAfter > 0 || heldFor > 0 }
}

/// What the limiter remembers of a key it throttled: kept apart from the TATs so that listing them never scans the
/// map of every key, and written only when a call is refused or delayed, never when one is admitted.
struct ThrottleMark {
    var limit: GCRA?
    var last: Int64
    /// When the key had room again, as the decision that throttled it saw it (cluster mode has no TAT to read).
    var until: Int64
    var refused = 0
    var delayed = 0
}

extension RateLimiter {
    /// How long a throttled key stays listed after its last refusal or delay.
    public static let throttleWindow: Int64 = 300 * 1_000_000_000
    /// The most keys remembered as throttled; a flood of distinct keys beyond it is not stored (the list says it is
    /// incomplete instead), so the memory refusals cost stays bounded.
    public static let maxThrottleMarks = 10_000

    /// The keys throttled within `throttleWindow` before `now` and the keys Klarna's holds keep back, in no
    /// order; `complete` is false when keys were throttled that `maxThrottleMarks` left out.
    ///
    /// Under the limiter's lock only the marks, holds and shared keys' TATs are copied out (bounded by
    /// `maxThrottleMarks` plus the holds); merchant keys' TATs are read from their stripes and the figures worked out
    /// after it is released.
    public func throttled(now: Int64) -> (keys: [RateLimitThrottle], complete: Bool) {
        typealias Copied = (key: Key, mark: ThrottleMark?, tat: Int64?, hold: Int64?)
        let horizon = now - Self.throttleWindow
        let (copied, complete) = lanes.withAll { lanes in
            state.withLock { state -> ([Copied], Bool) in
                // What can come back of the lanes' loans first; loans still held count as used.
                state.reclaimAll(from: lanes, now: now)
                var out: [Copied] = []
                out.reserveCapacity(state.throttleMarks.count + state.holds.count)
                for (key, mark) in state.throttleMarks where mark.last > horizon {
                    out.append((key, mark, key.rule.isPerMerchant ? nil : state.tats[key], state.holds[key]))
                }
                for (key, hold) in state.holds where hold > now && state.throttleMarks[key].map({ $0.last <= horizon }) ?? true {
                    out.append((key, nil, nil, hold))
                }
                return (out, state.lastUnmarked.map { $0 <= horizon } ?? true)
            }
        }
        let keys = copied.map { entry in
            let limit = entry.mark?.limit
            // A merchant key's TAT from its stripe, after the state's lock is released: a decision takes the stripes
            // first, so the two are never taken the other way round.
            let tat = isClustered ? nil : (entry.mark != nil && entry.key.rule.isPerMerchant ? stripes.tat(entry.key) : entry.tat)
            let heldFor = entry.hold.map { max(0, $0 - now) } ?? 0
            let conforms = isClustered ? (entry.mark?.until ?? now) : (limit.flatMap { gcra in tat.map { gcra.earliest(tat: $0) } } ?? now)
            return RateLimitThrottle(
                key: entry.key, limit: limit,
                remaining: isClustered ? nil : limit.map { gcra in tat.map { gcra.remaining(tat: $0, now: now) } ?? gcra.burst },
                retryAfter: max(0, conforms - now, heldFor), heldFor: heldFor,
                resetAfter: tat.flatMap { tat in limit.map { $0.resetAfter(tat: tat, now: now) } } ?? 0,
                refused: entry.mark?.refused ?? 0, delayed: entry.mark?.delayed ?? 0, sinceLast: entry.mark.map { now - $0.last })
        }
        return (keys, complete)
    }
}

extension RateLimiter.State {
    /// Notes that `limit` refused (or delayed) a call at `now` that it would have let through at `until`.
    mutating func markThrottled(_ limit: RateLimiter.Applicable, now: Int64, until: Int64, refused: Bool) {
        if var mark = throttleMarks[limit.key] {
            // A key throttled again after the window starts its counts anew, so they always cover the window.
            if now - mark.last > RateLimiter.throttleWindow { (mark.refused, mark.delayed) = (0, 0) }
            mark.limit = limit.gcra
            mark.last = now
            mark.until = until
            if refused { mark.refused += 1 } else { mark.delayed += 1 }
            throttleMarks[limit.key] = mark
        } else if throttleMarks.count < RateLimiter.maxThrottleMarks {
            throttleMarks[limit.key] = ThrottleMark(limit: limit.gcra, last: now, until: until, refused: refused ? 1 : 0, delayed: refused ? 0 : 1)
        } else {
            lastUnmarked = now
        }
    }

    /// Forgets marks older than the window.
    mutating func sweepThrottleMarks(now: Int64) {
        throttleMarks = throttleMarks.filter { $0.value.last > now - RateLimiter.throttleWindow }
    }
}
