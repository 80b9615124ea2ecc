import Synchronization

/// Who a call is for, as far as rate limits care.
public struct RateLimitSubject: Sendable {
    /// The authenticated caller.
    public var callerID: String
    /// The merchant, for merchant-scoped and direct calls.
    public var merchantID: String?
    /// The merchant's groups, for plan assignment.
    public var merchantGroups: [String]
    /// The partner whose quota the call uses.
    public var partnerID: String
    /// The environment, which picks Klarna's figures.
    public var environment: KlarnaEnvironment
    /// Klarna's rate-limit category of the operation.
    public var category: String
    /// The partner's and caller's own limits as the snapshot resolved them; nil reads them from the policy.
    public var resolved: ResolvedRateLimits?

    /// Makes a subject.
    public init(
        callerID: String, merchantID: String?, merchantGroups: [String], partnerID: String, environment: KlarnaEnvironment, category: String,
        resolved: ResolvedRateLimits? = nil
    ) {
        self.resolved = resolved
        self.callerID = callerID
        self.merchantID = merchantID
        self.merchantGroups = merchantGroups
        self.partnerID = partnerID
        self.environment = environment
        self.category = category
    }
}

/// The limits of one call that `rate-limits.yaml` can set per partner id and per caller id, resolved when the
/// snapshot is built (`PartnerState.rateLimits`, `CallerState.rateLimit`), so deciding looks up no override.
public struct ResolvedRateLimits: Sendable {
    /// The partner level: the partner's override, else its environment's figures.
    public var partner: CategoryLimits?
    /// The caller level: the caller's override, else `caller`.
    public var caller: LimitSpec?

    /// Makes resolved limits.
    public init(partner: CategoryLimits?, caller: LimitSpec?) {
        self.partner = partner
        self.caller = caller
    }
}

/// What the limiter decided for one call.
public enum RateLimitDecision: Sendable, Equatable {
    /// Forward now.
    case admit
    /// Forward after waiting this many nanoseconds (shaping); room is already reserved. Call `dequeued()` then.
    case delay(nanoseconds: Int64)
    /// Cluster mode, shaping: nothing is reserved; after this many nanoseconds call `dequeued()`, then decide
    /// again (passing the time of the first decision as `since`).
    case retry(afterNanoseconds: Int64)
    /// Cluster mode: no lease for a limit yet. The `wake` given to `decide` is called once (off the caller's
    /// thread) when the lease is granted or the ledger fails; then decide again, passing `since`.
    case park
    /// Refuse with this error (`GATEWAY_RATE_LIMITED` and the headers of the rule that refused).
    case refuse(GatewayError, rule: RateLimitRule)
}

/// Counts per rule, for metrics and tests.
public struct RateLimitCounts: Sendable, Equatable {
    /// Calls the rule let through at once.
    public var admitted = 0
    /// Calls the rule made wait.
    public var delayed = 0
    /// Calls the rule refused.
    public var refused = 0
    /// Calls a rule in shadow mode would have delayed or refused.
    public var shadowRefused = 0
}

/// The mutable side of rate limiting: one GCRA timestamp per key, holds learned from Klarna's 429s, counters.
///
/// Checking every applicable limit and committing them is atomic: a call refused by one rule never spends another
/// rule's quota. So that event loops deciding at once do not all wait on one lock, the keys live in three places,
/// always locked in this order: the merchant's keys in stripes (`TATStripes`), admissions of the keys every call
/// shares (partner, caller, global) lent to each thread (`LaneCredits`), and the rest under `state`. A call with room
/// in every limit is admitted under its merchant's stripes and its thread's lane, taking the state's lock only to
/// borrow. A call that must wait or be refused, and every call while a hold learned from Klarna lasts, is decided
/// with its stripes, every lane and the state locked, after what can come back of its shared keys' loans has
/// (docs/config.md, "Rate limits across event loops"). The lanes also count the admissions made through
/// them; `bench/` measures it all.
///
/// In cluster mode (several instances on one PostgreSQL) every enforced limit is decided by a `ClusterLimits`
/// lease book instead of the local TAT; see `RateLimiter+Cluster.swift` and docs/quota-leasing.md.
public final class RateLimiter: Sendable {
    typealias Key = RateLimitKey

    struct State {
        /// TATs of the keys every call shares (partner, caller, global); the merchants' are in `TATStripes`.
        var tats: [Key: Int64] = [:]
        /// The latest `now` a lend or reclaim was asked at.
        var clock: Int64 = .min
        var holds: [Key: Int64] = [:]
        var queued = 0
        var counts = RuleCounts()
        /// Cluster mode's lease book; nil for a single instance.
        var cluster: ClusterLimits?
        /// Calls parked for a lease, by the lease they wait for.
        var parked: [QuotaLeaseKey: [@Sendable () -> Void]] = [:]
        /// Keys refused or delayed recently, for the admin API (`RateLimiter+Throttled.swift`).
        var throttleMarks: [Key: ThrottleMark] = [:]
        /// When a throttled key was last left out because `throttleMarks` was full.
        var lastUnmarked: Int64?
    }

    let state: Mutex<State>
    /// Local mode's TATs of per-merchant keys.
    let stripes = TATStripes()
    /// Local mode's loans of shared keys to each thread.
    let lanes = LaneCredits()
    /// When the last hold learned from Klarna ends (`Int64.min`: none), so that a decision reads the holds, under the
    /// state's lock, only until then; written under that lock.
    private let holdsEnd = Atomic<Int64>(.min)
    /// Where cluster mode sends the ledger work its decisions produce (set once by the ledger client).
    let ledger = Mutex<LedgerSink?>(nil)

    /// The ledger client's entry point, in a struct because a bare closure kept in a `Mutex` is wrapped in two
    /// more reabstraction thunks on every `withLock { $0 }`: each call then ran through a chain as long as the
    /// calls before it, and a gateway's CPU per leased call grew with its uptime.
    struct LedgerSink: Sendable {
        let send: @Sendable ([QuotaLeaseAction]) -> Void
    }

    /// True when limits are leased from a shared ledger.
    public let isClustered: Bool

    /// Makes an empty limiter: local GCRAs, or with `cluster` settings, leases from a shared ledger.
    public init(cluster: ClusterLimits.Settings? = nil) {
        state = Mutex(State(cluster: cluster.map { ClusterLimits(settings: $0) }))
        isClustered = cluster != nil
    }

    struct Applicable {
        let rule: RateLimitRule
        let key: Key
        let gcra: GCRA?
        let maxDelay: Int64
        let shadow: Bool
    }

    func applicable(_ subject: RateLimitSubject, _ policy: RateLimitPolicy) -> [Applicable] {
        withApplicable(subject, policy) { Array($0) }
    }

    /// The limits that apply to `subject`, made on the stack for `body`: a decision allocates no list of them.
    func withApplicable<Result>(
        _ subject: RateLimitSubject, _ policy: RateLimitPolicy, _ body: (UnsafeBufferPointer<Applicable>) -> Result
    ) -> Result {
        withUnsafeTemporaryAllocation(of: Applicable.self, capacity: RateLimitRule.allCases.count) { buffer in
            var count = 0
            defer { buffer.baseAddress?.deinitialize(count: count) }
            // The policy's dictionaries are usually empty or tiny: an empty one is not asked (asking hashes the key).
            let hasOptions = !policy.options.isEmpty
            func add(_ rule: RateLimitRule, _ key: Key, _ spec: LimitSpec?) {
                let options = hasOptions ? policy.options[rule.rawValue] : nil
                (buffer.baseAddress! + count).initialize(to: Applicable(
                    rule: rule, key: key, gcra: spec?.gcra, maxDelay: Int64(options?.maxDelayMs ?? 0) * 1_000_000,
                    shadow: options?.shadow ?? false))
                count += 1
            }
            // The keys hold this thread's copies of the strings every call shares, so that their reference counts stay
            // on this core (`ThreadLocalStrings`).
            let category = ThreadLocalStrings.local(subject.category)
            let partnerID = ThreadLocalStrings.local(subject.partnerID)
            let callerID = ThreadLocalStrings.local(subject.callerID)
            if let merchantID = subject.merchantID {
                let plan = (policy.merchantPlans.isEmpty ? nil : policy.merchantPlans[merchantID])
                    ?? (policy.groupPlans.isEmpty ? nil : subject.merchantGroups.lazy.compactMap { policy.groupPlans[$0] }.first)
                let limits = plan.flatMap { policy.plans[$0]?.merchant } ?? policy.merchant[subject.environment]
                // Added even without a limit, so that holds learned from Klarna's 429s apply to the key.
                add(.merchant, Key(rule: .merchant, first: merchantID, second: category), limits?.limit(for: category))
            }
            let resolved = subject.resolved ?? ResolvedRateLimits(
                partner: policy.partnerLimits(partnerID: subject.partnerID, environment: subject.environment),
                caller: policy.callerLimit(callerID: subject.callerID))
            add(.partner, Key(rule: .partner, first: partnerID, second: category), resolved.partner?.limit(for: category))
            if let spec = resolved.caller { add(.caller, Key(rule: .caller, first: callerID, second: ""), spec) }
            if let spec = policy.callerMerchant, let merchantID = subject.merchantID {
                add(.callerMerchant, Key(rule: .callerMerchant, first: callerID, second: merchantID), spec)
            }
            if let spec = policy.global { add(.global, Key(rule: .global, first: "", second: ""), spec) }
            return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// Decides one call at `now` (nanoseconds on a monotonic clock) and commits its use of every limit.
    ///
    /// Cluster mode may also answer `.retry` or `.park`: `since` is when this call was first decided (nil the
    /// first time), so shaping never waits longer than `max_delay_ms` in all; `wake` is called when a parked call
    /// should be decided again.
    public func decide(
        _ subject: RateLimitSubject, policy: RateLimitPolicy, now: Int64, since: Int64? = nil, wake: (@Sendable () -> Void)? = nil
    ) -> RateLimitDecision {
        // The closures below capture only the queue's bound: capturing the policy copied it, a retain and a release of
        // each of its dictionaries per decision, on storage every event loop shares (docs/performance.md).
        let maxQueued = policy.maxQueued
        return withApplicable(subject, policy) { limits in
            if isClustered { return decideClustered(limits, maxQueued: maxQueued, now: now, since: since ?? now, wake: wake) }
            return stripes.withLocked(limits) { tables in
                if now >= holdsEnd.load(ordering: .relaxed), admitAtOnce(limits, tables: tables, now: now) { return .admit }
                return decideExactly(limits, tables: tables, maxQueued: maxQueued, now: now)
            }
        }
    }

    /// Where `admitAtOnce` found a limit's state: a merchant key's TAT in its stripe, or a shared key's credit in the lane.
    private enum Slot {
        case none
        case tat(Dictionary<Key, Int64>.Index)
        case credit(Dictionary<Key, LaneCredits.Credit>.Index)
    }

    /// Admits the call now if every limit has room: the merchant's keys from their stripes (locked by the caller),
    /// the shared keys from this thread's lane, which borrows a portion from `state` when it holds none. False when
    /// some limit has no room now; nothing is spent then, though a loan made on the way stays in the lane.
    private func admitAtOnce(_ limits: UnsafeBufferPointer<Applicable>, tables: UnsafeBufferPointer<UnsafeMutablePointer<TATStripes.Table>?>, now: Int64) -> Bool {
        withUnsafeTemporaryAllocation(of: Slot.self, capacity: limits.count) { slots in
            slots.initialize(repeating: .none)
            defer { _ = slots.deinitialize() }
            // Each merchant key's TAT is found once; the commit writes through the index found.
            for index in limits.indices {
                guard let table = tables[index], let gcra = limits[index].gcra else { continue }
                guard let slot = table.pointee.index(forKey: limits[index].key) else { continue }
                if gcra.earliest(tat: table.pointee.values[slot]) > now { return false }
                slots[index] = .tat(slot)
            }
            let lent = lanes.withOwnLane { held -> Bool in
                // Each credit is found once and spent through the index found, unless a loan was made meanwhile (an
                // insertion may move the others).
                var lent = false
                for index in limits.indices where tables[index] == nil {
                    guard let gcra = limits[index].gcra else { continue }
                    if let slot = held.credits.index(forKey: limits[index].key) {
                        let credit = held.credits.values[slot]
                        if credit.count > 0, credit.until >= now, credit.gcra == gcra {
                            slots[index] = .credit(slot)
                            continue
                        }
                    }
                    guard state.withLock({ $0.lend(limits[index].key, gcra, to: &held.credits, now: now) }) else { return false }
                    lent = true
                }
                for index in limits.indices {
                    if tables[index] == nil && limits[index].gcra != nil {
                        if !lent, case .credit(let slot) = slots[index] {
                            held.credits.values[slot].count -= 1
                        } else {
                            held.credits[limits[index].key]!.count -= 1
                        }
                    }
                    held.admitted[limits[index].rule.index] += 1
                }
                return true
            }
            guard lent else { return false }
            // Keys seen before are written through their index first; new keys are inserted after, since an insertion
            // may move the others of its stripe.
            for index in limits.indices {
                guard let table = tables[index], let gcra = limits[index].gcra, case .tat(let slot) = slots[index] else { continue }
                table.pointee.values[slot] = gcra.advance(tat: table.pointee.values[slot], at: now)
            }
            for index in limits.indices {
                guard let table = tables[index], let gcra = limits[index].gcra, case .none = slots[index] else { continue }
                table.pointee[limits[index].key] = gcra.advance(tat: nil, at: now)
            }
            return true
        }
    }

    /// Decides the call with its merchant's stripes (locked by the caller), every lane and the state locked, after
    /// taking back what the lanes hold of its shared keys: the exact GCRA, shaping, refusals, holds and shadow rules.
    private func decideExactly(
        _ limits: UnsafeBufferPointer<Applicable>, tables: UnsafeBufferPointer<UnsafeMutablePointer<TATStripes.Table>?>, maxQueued: Int,
        now: Int64
    ) -> RateLimitDecision {
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: limits.count * 2) { scratch in
            let waits = UnsafeMutableBufferPointer(rebasing: scratch[0..<limits.count])
            let tats = UnsafeMutableBufferPointer(rebasing: scratch[limits.count...])
            return lanes.withAll { lanes in
                state.withLock { state -> RateLimitDecision in
                    // How long each limit (or a hold learned from Klarna) makes this call wait.
                    for index in limits.indices {
                        let key = limits[index].key
                        var tat: Int64?
                        if limits[index].gcra != nil {
                            if let table = tables[index] {
                                tat = table.pointee[key]
                            } else {
                                state.reclaim(key, from: lanes, now: now)
                                tat = state.tats[key]
                            }
                        }
                        tats[index] = tat ?? .min
                        var earliest = limits[index].gcra?.earliest(tat: tat) ?? Int64.min
                        if !state.holds.isEmpty, let hold = state.holds[key], hold > earliest { earliest = hold }
                        waits[index] = earliest > now ? earliest - now : 0
                    }
                    var enforcedWait: Int64 = 0
                    var decider: Int?
                    for index in limits.indices where !limits[index].shadow && waits[index] > 0 {
                        enforcedWait = max(enforcedWait, waits[index])
                        if decider == nil { decider = index }
                    }
                    // Shaping only when every rule that has no room allows waiting that long.
                    let shapeable = limits.indices.allSatisfy { limits[$0].shadow || waits[$0] == 0 || limits[$0].maxDelay >= enforcedWait }
                    if let decider, !shapeable || state.queued >= maxQueued {
                        state.counts[limits[decider].rule].refused += 1
                        state.markThrottled(limits[decider], now: now, until: now + waits[decider], refused: true)
                        let tat = tats[decider] == .min ? now : tats[decider]
                        let reset = limits[decider].gcra?.resetAfter(tat: tat, now: now) ?? 0
                        return .refuse(refusal(limits[decider], wait: waits[decider], resetAfter: reset), rule: limits[decider].rule)
                    }
                    // Admit now or after the wait: reserve room in every limit at the time the call will leave.
                    let at = now + enforcedWait
                    for index in limits.indices {
                        if limits[index].shadow && waits[index] > enforcedWait {
                            state.counts[limits[index].rule].shadowRefused += 1
                            continue
                        }
                        if let gcra = limits[index].gcra {
                            let advanced = gcra.advance(tat: tats[index] == .min ? nil : tats[index], at: at)
                            if let table = tables[index] { table.pointee[limits[index].key] = advanced } else { state.tats[limits[index].key] = advanced }
                        }
                        if enforcedWait > 0 && waits[index] > 0 {
                            state.counts[limits[index].rule].delayed += 1
                        } else {
                            state.counts[limits[index].rule].admitted += 1
                        }
                    }
                    if enforcedWait > 0 {
                        for index in limits.indices where !limits[index].shadow && waits[index] > 0 {
                            state.markThrottled(limits[index], now: now, until: now + waits[index], refused: false)
                        }
                        state.queued += 1
                        return .delay(nanoseconds: enforcedWait)
                    }
                    return .admit
                }
            }
        }
    }

    func refusal(_ limit: Applicable, wait: Int64, resetAfter reset: Int64) -> GatewayError {
        let retryAfter = max(1, (wait + 999_999_999) / 1_000_000_000)
        var headers = [GatewayError.Header("Retry-After", String(retryAfter)), GatewayError.Header("X-Ratelimit-Remaining", "0")]
        if let gcra = limit.gcra {
            let rate = gcra.rate == gcra.rate.rounded() ? String(Int(gcra.rate)) : String(gcra.rate)
            headers.append(GatewayError.Header("X-Ratelimit-Limit", "\(rate), \(rate);w=1;name=\"\(limit.rule.rawValue)\""))
            headers.append(GatewayError.Header("X-Ratelimit-Reset", String(max(retryAfter, (reset + 999_999_999) / 1_000_000_000))))
        } else {
            headers.append(GatewayError.Header("X-Ratelimit-Reset", String(retryAfter)))
        }
        let what = limit.gcra == nil ? "Klarna asked the gateway to hold calls" : "the \(limit.rule.rawValue) rate limit is reached"
        return GatewayError(.rateLimited, "Rate limited: \(what); retry after \(retryAfter) s.", headers: headers)
    }

    /// A delayed call left the queue (forwarded or abandoned).
    public func dequeued() {
        state.withLock { $0.queued = max(0, $0.queued - 1) }
    }

    /// Klarna said the key is exhausted (a 429, or `X-Ratelimit-Remaining: 0`): hold further calls for it
    /// locally until `until` instead of letting them reach Klarna.
    public func hold(_ subject: RateLimitSubject, until: Int64) {
        let key = subject.merchantID.map { Key(rule: .merchant, first: $0, second: subject.category) }
            ?? Key(rule: .partner, first: subject.partnerID, second: subject.category)
        state.withLock { state in
            state.holds[key] = max(state.holds[key] ?? 0, until)
            holdsEnd.store(max(holdsEnd.load(ordering: .relaxed), until), ordering: .relaxed)
        }
    }

    /// Forgets keys that are back to a full burst and holds that expired, so memory follows active keys only.
    public func sweep(now: Int64) {
        stripes.sweep(now: now)
        lanes.withAll { lanes in
            state.withLock { state in
                state.reclaimAll(from: lanes, now: now)
                state.tats = state.tats.filter { $0.value > now }
            }
        }
        state.withLock { state in
            state.holds = state.holds.filter { $0.value > now }
            holdsEnd.store(state.holds.values.max() ?? .min, ordering: .relaxed)
            state.sweepThrottleMarks(now: now)
            state.cluster?.sweep(now: now)
        }
    }

    /// Counters per rule. Admissions made through the lanes are read lane by lane after the state's lock, so a
    /// reading taken while calls are decided may show a call's delay or refusal before another rule's admission of
    /// it: figures for metrics, exact once calls stop.
    public var counts: [RateLimitRule: RateLimitCounts] {
        var counts = state.withLock { $0.counts }
        for rule in RateLimitRule.allCases { counts[rule].admitted += lanes.admitted(rule) }
        return counts.counted
    }

    /// Keys currently remembered (for memory tests and metrics).
    public var trackedKeys: Int { stripes.count + state.withLock { $0.tats.count + $0.holds.count + ($0.cluster?.trackedKeys ?? 0) } }
}

/// Counters per rule in a fixed array indexed by the rule, so counting under the limiter's lock hashes nothing.
struct RuleCounts: Sendable {
    private var values = [RateLimitCounts](repeating: RateLimitCounts(), count: RateLimitRule.allCases.count)

    /// The counters of `rule`.
    subscript(rule: RateLimitRule) -> RateLimitCounts {
        get { values[rule.index] }
        _modify { yield &values[rule.index] }
    }

    /// The rules that counted anything, as `RateLimiter.counts` reports them.
    var counted: [RateLimitRule: RateLimitCounts] {
        var out: [RateLimitRule: RateLimitCounts] = [:]
        for rule in RateLimitRule.allCases where values[rule.index] != RateLimitCounts() { out[rule] = values[rule.index] }
        return out
    }
}

extension RateLimitRule {
    /// True for the rules whose keys belong to one merchant, kept in `TATStripes`; the others' keys are shared by
    /// every call of a partner or caller, kept in `State.tats` and lent to each thread by `LaneCredits`.
    var isPerMerchant: Bool { self == .merchant || self == .callerMerchant }

    /// The rule's place in `allCases`.
    var index: Int {
        switch self {
        case .merchant: 0
        case .partner: 1
        case .caller: 2
        case .callerMerchant: 3
        case .global: 4
        }
    }
}
