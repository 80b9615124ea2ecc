/// Exponential back-off with jitter: attempt n waits between half and all of `base × 2^(n-1)`, capped.
///
/// Half the window is fixed and half random ("equal jitter"): callers that failed together spread out, and no
/// retry goes out immediately.
public struct Backoff: Sendable, Equatable {
    /// The first retry's window, nanoseconds.
    public var base: Int64
    /// The largest window, nanoseconds.
    public var cap: Int64

    /// Makes a schedule from milliseconds.
    public init(baseMs: Int = 100, capMs: Int = 2_000) {
        base = Int64(max(1, baseMs)) * 1_000_000
        cap = Int64(max(baseMs, capMs)) * 1_000_000
    }

    /// The wait before retry number `retry` (1 for the first retry).
    public func delay<R: RandomNumberGenerator>(retry: Int, random: inout R) -> Int64 {
        let shift = min(max(retry - 1, 0), 30)
        let window = min(cap, base << Int64(shift))
        let half = window / 2
        // One draw scaled onto the upper half (no rejection sampling, so any source, even a constant one, ends).
        let unit = Double(random.next() >> 11) / Double(1 << 53)
        return min(window, half + Int64(unit * Double(window - half + 1)))
    }
}
