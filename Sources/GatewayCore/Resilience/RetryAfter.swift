#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date in any of the three forms a recipient must
/// accept (§5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`, and
/// asctime `Sun Nov  6 08:49:37 1994`.
public enum RetryAfter {
    /// The wait in nanoseconds, from `value` read at `nowEpochSeconds`; nil when it is neither form or a day or more
    /// away. A date in the past is no wait.
    public static func nanoseconds(_ value: String, nowEpochSeconds: Int) -> Int64? {
        let text = String(Substring(value).trimmingSpaces)
        guard !text.isEmpty else { return nil }
        let seconds: Double
        if let delay = Double(text) {
            seconds = delay
        } else if let date = epochSeconds(httpDate: text) {
            seconds = Double(max(0, date - nowEpochSeconds))
        } else {
            return nil
        }
        guard seconds >= 0, seconds < 86_400 else { return nil }
        return Int64(seconds * 1_000_000_000)
    }

    /// Seconds since the epoch of an HTTP-date, or nil.
    public static func epochSeconds(httpDate text: String) -> Int? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        var day = 0, month = 0, year = 0
        var clock: Substring = ""
        if parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT" {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            guard let d = Int(parts[1]), let m = monthNumber(parts[2]), let y = Int(parts[3]) else { return nil }
            (day, month, year, clock) = (d, m, y, parts[4])
        } else if parts.count == 4, parts[0].hasSuffix(","), parts[3] == "GMT" {
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (a two-digit year is taken in 1970…2069)
            let date = parts[1].split(separator: "-")
            guard date.count == 3, let d = Int(date[0]), let m = monthNumber(date[1]), let y = Int(date[2]), date[2].count == 2 else { return nil }
            (day, month, year, clock) = (d, m, y < 70 ? 2000 + y : 1900 + y, parts[2])
        } else if parts.count == 5 {
            // asctime: Sun Nov  6 08:49:37 1994
            guard let m = monthNumber(parts[1]), let d = Int(parts[2]), let y = Int(parts[4]) else { return nil }
            (day, month, year, clock) = (d, m, y, parts[3])
        } else {
            return nil
        }
        let time = clock.split(separator: ":")
        guard time.count == 3, let hour = Int(time[0]), let minute = Int(time[1]), let second = Int(time[2]),
            (1...31).contains(day), (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second), year >= 1970
        else { return nil }
        var fields = tm()
        fields.tm_year = Int32(year - 1900)
        fields.tm_mon = Int32(month - 1)
        fields.tm_mday = Int32(day)
        fields.tm_hour = Int32(hour)
        fields.tm_min = Int32(minute)
        fields.tm_sec = Int32(second)
        return Int(timegm(&fields))
    }

    private static func monthNumber(_ name: Substring) -> Int? {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return months.firstIndex(of: String(name)).map { $0 + 1 }
    }
}
