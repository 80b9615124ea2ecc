import GatewayCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock milliseconds and Klarna's timestamp format, without Foundation formatters.
enum SimulatorClock {
    static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// `2026-01-31T12:00:00.000Z`.
    static func iso8601(_ milliseconds: Int64) -> String {
        UTCTime.timestamp(epochSeconds: Int(milliseconds / 1000), fraction: Int(milliseconds % 1000), digits: 3)
    }
}
