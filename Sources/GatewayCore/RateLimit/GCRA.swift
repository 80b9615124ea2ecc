/// The generic cell rate algorithm for one limit: one timestamp per key, exact at every instant.
///
/// A key's state is its theoretical arrival time (TAT). A request at `now` conforms when
/// `TAT - tolerance <= now`; admitting it moves TAT to `max(TAT, now) + interval`. Unlike fixed windows there is
/// no edge at which twice the burst gets through, and unlike token buckets there is nothing to refill.
public struct GCRA: Sendable, Hashable {
    /// Nanoseconds between requests at the sustained rate.
    public let interval: Int64
    /// How far ahead of schedule a key may run: `(burst - 1) * interval`.
    public let tolerance: Int64
    /// The sustained rate, per second.
    public let rate: Double
    /// The largest number of requests admitted at one instant.
    public let burst: Int

    /// A limit of `rate` per second with bursts of up to `burst` requests.
    public init(rate: Double, burst: Int) {
        precondition(rate > 0 && burst >= 1)
        self.rate = rate
        self.burst = burst
        self.interval = max(1, Int64((1_000_000_000 / rate).rounded()))
        self.tolerance = interval * Int64(burst - 1)
    }

    /// The earliest time a request conforms, given a key's TAT (nil for a fresh key).
    @inlinable
    public func earliest(tat: Int64?) -> Int64 {
        guard let tat else { return Int64.min }
        return tat - tolerance
    }

    /// The TAT after admitting a request at `time`.
    @inlinable
    public func advance(tat: Int64?, at time: Int64) -> Int64 {
        max(tat ?? time, time) + interval
    }

    /// Requests still admissible at `now` after the key reached `tat`: from 0 to `burst`.
    public func remaining(tat: Int64, now: Int64) -> Int {
        // A TAT in the past counts as `now` (an idle key holds one burst, not the time it was idle); checked
        // before dividing, since division truncates toward zero, which would count a call not yet due.
        let slack = now + tolerance - max(tat, now)
        guard slack >= 0 else { return 0 }
        return Int(slack / interval) + 1
    }

    /// Nanoseconds until the key is back to a full burst.
    public func resetAfter(tat: Int64, now: Int64) -> Int64 { max(0, tat - now) }
}
