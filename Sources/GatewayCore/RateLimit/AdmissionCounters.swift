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
/// held the lock about a fifth longer (docs/performance.md). Each thread counts in a stripe of its own, picked by
/// the thread's id, so two loops rarely write the same cache line; a reading sums the stripes.
final class AdmissionCounters: Sendable {
    /// Counters per stripe, of which the first `RateLimitRule.allCases.count` are used: two cache lines, because an
    /// object is only 16-byte aligned, so a stripe of one line's size would share a line with its neighbour.
    private static let stride = 16
    private static let stripes = 8
    private let cells: InlineArray<128, Atomic<Int>> = InlineArray { _ in Atomic(0) }

    /// Counts one admission of each rule whose bit (`1 << rule.index`) is set in `rules`.
    func count(_ rules: UInt8) {
        // Multiplied, then its top bits: thread ids are addresses a stack's size apart, alike in their low bits.
        #if canImport(Glibc)
        let thread = UInt64(pthread_self())
        #else
        let thread = UInt64(UInt(bitPattern: pthread_self()))
        #endif
        let stripe = Int((thread &* 0x9E37_79B9_7F4A_7C15) >> 61)
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
