import Synchronization

/// What cluster mode is doing, for metrics and `/readyz`.
public struct QuotaLeaseStatus: Sendable, Equatable {
    /// True while the ledger is unreachable and limits are enforced by this instance's share.
    public var fallback: Bool
    /// Instances seen recently (the fallback share's divisor).
    public var instances: Int
    /// Calls parked for a lease now.
    public var parked: Int
    /// Keys the lease book remembers.
    public var keys: Int
}

extension RateLimiter {
    /// Cluster mode's `decide`: the lease book decides under the lock; its ledger work is handed to the ledger
    /// client after the lock is released.
    func decideClustered(
        _ limits: UnsafeBufferPointer<Applicable>, maxQueued: Int, now: Int64, since: Int64, wake: (@Sendable () -> Void)?
    ) -> RateLimitDecision {
        let (decision, actions) = state.withLock { state -> (RateLimitDecision, [QuotaLeaseAction]) in
            let room = state.queued < maxQueued
            let (outcome, actions) = state.cluster!.decide(
                limits, holds: state.holds, room: room, now: now, since: since, counts: &state.counts)
            switch outcome {
            case .admit:
                return (.admit, actions)
            case .retry(let after):
                state.queued += 1
                return (.retry(afterNanoseconds: after), actions)
            case .park(let key):
                state.queued += 1
                state.parked[key, default: []].append(wake ?? {})
                return (.park, actions)
            case .refuse(let index, let wait):
                state.markThrottled(limits[index], now: now, until: now + wait, refused: true)
                return (.refuse(refusal(limits[index], wait: wait, resetAfter: wait), rule: limits[index].rule), actions)
            }
        }
        if !actions.isEmpty { ledger.withLock { $0 }?.send(actions) }
        return decision
    }

    /// Connects the ledger client: every acquire and release cluster mode decides on is handed to `sink`, which
    /// must not block (it runs on the caller's thread, an event loop).
    public func attachLedger(_ sink: @escaping @Sendable ([QuotaLeaseAction]) -> Void) {
        ledger.withLock { $0 = LedgerSink(send: sink) }
    }

    /// The ledger answered an acquire for `key` (at `now` on this instance's monotonic clock); calls parked for
    /// it are woken to decide again.
    public func leaseGranted(_ key: QuotaLeaseKey, _ grant: QuotaGrant, now: Int64) {
        let woken = state.withLock { state in
            state.cluster?.book.granted(key, count: grant.granted, nextAt: grant.granted > 0 ? nil : now + grant.wait, now: now)
            return Self.unpark(&state, key)
        }
        for wake in woken { wake() }
    }

    /// An acquire for `key` failed: the instance enters fallback (its share of each limit) and every parked call
    /// is woken to decide again by that share.
    public func leaseFailed(_ key: QuotaLeaseKey) {
        let woken = state.withLock { state in
            state.cluster?.book.failed(key)
            state.cluster?.book.enterFallback()
            return Self.unpark(&state, nil)
        }
        for wake in woken { wake() }
    }

    /// The ledger cannot be reached (a heartbeat failed): enter fallback and wake every parked call.
    public func ledgerUnreachable() {
        let woken = state.withLock { state in
            state.cluster?.book.enterFallback()
            return Self.unpark(&state, nil)
        }
        for wake in woken { wake() }
    }

    /// The ledger answered (a heartbeat succeeded) and counted `instances` seen recently: lease again, and use
    /// that count for the fallback share from now on.
    public func ledgerReachable(instances: Int) {
        state.withLock { state in
            state.cluster?.book.settings.instances = max(1, instances)
            if state.cluster?.book.fallback == true { state.cluster?.book.leaveFallback() }
        }
    }

    /// Leases past their lifetime: their unspent admissions, to give back.
    public func expireLeases(now: Int64) -> [QuotaLeaseAction] {
        state.withLock { $0.cluster?.book.expire(now: now) ?? [] }
    }

    /// Cluster mode's state; nil for a single instance.
    public var quotaStatus: QuotaLeaseStatus? {
        state.withLock { state in
            state.cluster.map {
                QuotaLeaseStatus(
                    fallback: $0.book.fallback, instances: $0.book.settings.instances,
                    parked: state.parked.values.reduce(0) { $0 + $1.count }, keys: $0.trackedKeys)
            }
        }
    }

    /// Takes the parked calls of `key` (every key when nil) out of the queue.
    private static func unpark(_ state: inout State, _ key: QuotaLeaseKey?) -> [@Sendable () -> Void] {
        var woken: [@Sendable () -> Void] = []
        if let key {
            woken = state.parked.removeValue(forKey: key) ?? []
        } else {
            woken = state.parked.values.flatMap { $0 }
            state.parked = [:]
        }
        state.queued = max(0, state.queued - woken.count)
        return woken
    }
}
