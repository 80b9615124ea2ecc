import NIOConcurrencyHelpers

/// Slows down repeated authentication failures from one address without ever locking anyone out.
///
/// Every request from an address with recent failures waits before its token is checked: `base` after one
/// failure, doubling with each further one up to `ceiling`. Waiting before the check (not only before the 401)
/// means parallel guesses wait too. A success from the address forgets its failures, and so do `forgetAfter`
/// seconds without one; the real operator, even sharing an address with a guesser, waits at most `ceiling`.
public final class AdminBackoff: Sendable {
    /// The wait after the first failure.
    public let base: Duration
    /// The longest wait.
    public let ceiling: Duration
    /// How long an address's failures are remembered after its last one.
    public let forgetAfter: Duration
    /// Addresses remembered at most; the stalest is forgotten first (memory stays bounded under a spray).
    public let capacity: Int

    private struct Failures {
        var count: Int
        var last: ContinuousClock.Instant
    }

    private let failures = NIOLockedValueBox<[String: Failures]>([:])

    /// Makes a back-off; the defaults are the documented ones (docs/admin-api.md).
    public init(base: Duration = .milliseconds(100), ceiling: Duration = .seconds(10), forgetAfter: Duration = .seconds(900), capacity: Int = 10_000) {
        self.base = base
        self.ceiling = ceiling
        self.forgetAfter = forgetAfter
        self.capacity = capacity
    }

    /// How long a request from `address` waits before its token is checked.
    public func delay(for address: String, now: ContinuousClock.Instant = .now) -> Duration {
        failures.withLockedValue { table in
            guard let entry = table[address] else { return .zero }
            if now - entry.last > forgetAfter {
                table[address] = nil
                return .zero
            }
            return Self.wait(after: entry.count, base: base, ceiling: ceiling)
        }
    }

    /// The wait after `count` failures: `base × 2^(count−1)`, at most `ceiling`.
    static func wait(after count: Int, base: Duration, ceiling: Duration) -> Duration {
        guard count > 0 else { return .zero }
        return min(base * (1 << min(count - 1, 30)), ceiling)
    }

    /// Counts a failed authentication from `address`.
    public func failed(_ address: String, now: ContinuousClock.Instant = .now) {
        failures.withLockedValue { table in
            if table[address] == nil, table.count >= capacity,
                let stalest = table.min(by: { $0.value.last < $1.value.last })?.key
            {
                table[stalest] = nil
            }
            table[address, default: Failures(count: 0, last: now)].count += 1
            table[address]?.last = now
        }
    }

    /// Forgets `address`'s failures after a success.
    public func succeeded(_ address: String) {
        failures.withLockedValue { _ = $0.removeValue(forKey: address) }
    }
}
