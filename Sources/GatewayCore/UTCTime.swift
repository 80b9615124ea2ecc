#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// UTC dates and times formatted by hand: a `DateFormatter` per log line or per request costs more than the work.
public enum UTCTime {
    /// Seconds and nanoseconds since the Unix epoch, now.
    public static func now() -> (seconds: Int, nanoseconds: Int) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return (Int(spec.tv_sec), Int(spec.tv_nsec))
    }

    /// Microseconds since the Unix epoch, now: the unit of every stored time.
    public static func nowMicros() -> Int64 {
        let now = now()
        return Int64(now.seconds) * 1_000_000 + Int64(now.nanoseconds / 1000)
    }

    /// `YYYY-MM-DD` of an instant.
    public static func day(epochSeconds: Int) -> String {
        let parts = components(epochSeconds)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
    }

    /// RFC 3339 with a fraction of `digits` digits (3 for milliseconds, 6 for microseconds): `2026-01-31T12:00:00.000Z`.
    public static func timestamp(epochSeconds: Int, fraction: Int, digits: Int) -> String {
        let parts = components(epochSeconds)
        return "\(day(epochSeconds: epochSeconds))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
            + ".\(pad(Int32(fraction), digits))Z"
    }

    /// The same for microseconds since the epoch, the unit of every stored time, with 1 to 6 fraction digits.
    public static func timestamp(micros: Int64, digits: Int = 6) -> String {
        var fraction = Int(micros % 1_000_000)
        for _ in digits..<6 { fraction /= 10 }
        return timestamp(epochSeconds: Int(micros / 1_000_000), fraction: fraction, digits: digits)
    }

    /// An HTTP-date in IMF-fixdate form (RFC 9110 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
    public static func httpDate(epochSeconds: Int) -> String {
        let parts = components(epochSeconds)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(days[Int(parts.tm_wday)]), \(pad(parts.tm_mday, 2)) \(months[Int(parts.tm_mon)]) \(pad(parts.tm_year + 1900, 4)) "
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)) GMT"
    }

    private static func components(_ epochSeconds: Int) -> tm {
        var seconds = time_t(epochSeconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return parts
    }

    private static func pad(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
