#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The calls each rule let through at once, counted outside the rate limiter's lock.
///
/// Nearly every decision admits, and counting its three or four admissions under the lock every event loop shares
/// made the lock's holder write counters the other loop had just written: with two loops deciding at once, that
/// held the lock about a fifth longer (docs/performance.md). Each thread counts in a stripe of its own (one cache
/// line, picked by the thread's id), so two loops rarely write the same line; a reading sums the stripes.
final class AdmissionCounters: Sendable {
    /// Counters per stripe: one cache line of `Int`s, of which the first `RateLimitRule.allCases.count` are used.
    private static let stride = 8
    private static let stripes = 8
    private let cells: InlineArray<64, Atomic<Int>> = InlineArray { _ in Atomic(0) }

    /// Counts one admission of each rule whose bit (`1 << rule.index`) is set in `rules`.
    func count(_ rules: UInt8) {
        // Multiplied, then its top bits: thread ids are addresses a stack's size apart, alike in their low bits.
        let stripe = Int((UInt64(UInt(bitPattern: Int(bitPattern: UInt(pthread_self())))) &* 0x9E37_79B9_7F4A_7C15) >> 61)
        var remaining = rules
        while remaining != 0 {
            let index = remaining.trailingZeroBitCount
            cells[stripe * Self.stride + index].wrappingAdd(1, ordering: .relaxed)
            remaining &= remaining - 1
        }
    }

    /// Admissions of `rule` counted so far.
    func admitted(_ rule: RateLimitRule) -> Int {
        (0..<Self.stripes).reduce(0) { $0 + cells[$1 * Self.stride + rule.index].load(ordering: .relaxed) }
    }
}
