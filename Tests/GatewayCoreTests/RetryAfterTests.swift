import Testing
@testable import GatewayCore

/// `Retry-After` in both of its forms (RFC 9110 §10.2.3), and the three date forms a recipient must accept.
@Suite("Retry-After")
struct RetryAfterTests {
    /// 1994-11-06T08:49:37Z, RFC 9110's example instant.
    static let example = 784_111_777

    @Test("delay-seconds, with spaces around, and refusals of what is neither form")
    func seconds() {
        #expect(RetryAfter.nanoseconds("120", nowEpochSeconds: 0) == 120_000_000_000)
        #expect(RetryAfter.nanoseconds(" 2 ", nowEpochSeconds: 0) == 2_000_000_000)
        #expect(RetryAfter.nanoseconds("0.5", nowEpochSeconds: 0) == 500_000_000)
        #expect(RetryAfter.nanoseconds("-1", nowEpochSeconds: 0) == nil)
        #expect(RetryAfter.nanoseconds("86400", nowEpochSeconds: 0) == nil)
        #expect(RetryAfter.nanoseconds("soon", nowEpochSeconds: 0) == nil)
        #expect(RetryAfter.nanoseconds("", nowEpochSeconds: 0) == nil)
    }

    @Test("UTCTime.httpDate writes the IMF-fixdate the parser reads back")
    func formatted() {
        #expect(UTCTime.httpDate(epochSeconds: Self.example) == "Sun, 06 Nov 1994 08:49:37 GMT")
        for instant in [0, 951_782_400, 1_790_000_000] {
            #expect(RetryAfter.epochSeconds(httpDate: UTCTime.httpDate(epochSeconds: instant)) == instant)
        }
    }

    @Test("UTCTime.timestamp(micros:) writes a stored time with six or three fraction digits")
    func storedTimes() {
        let micros = Int64(Self.example) * 1_000_000 + 123_456
        #expect(UTCTime.timestamp(micros: micros) == "1994-11-06T08:49:37.123456Z")
        #expect(UTCTime.timestamp(micros: micros, digits: 3) == "1994-11-06T08:49:37.123Z")
        #expect(UTCTime.timestamp(micros: Int64(Self.example) * 1_000_000 + 7, digits: 6) == "1994-11-06T08:49:37.000007Z")
    }

    @Test("the three HTTP-date forms name the same instant")
    func dates() {
        #expect(RetryAfter.epochSeconds(httpDate: "Sun, 06 Nov 1994 08:49:37 GMT") == Self.example)
        #expect(RetryAfter.epochSeconds(httpDate: "Sunday, 06-Nov-94 08:49:37 GMT") == Self.example)
        #expect(RetryAfter.epochSeconds(httpDate: "Sun Nov  6 08:49:37 1994") == Self.example)
        #expect(RetryAfter.epochSeconds(httpDate: "Sun, 06 Foo 1994 08:49:37 GMT") == nil)
        #expect(RetryAfter.epochSeconds(httpDate: "Sun, 06 Nov 1994 25:49:37 GMT") == nil)
        #expect(RetryAfter.epochSeconds(httpDate: "Sun, 06 Nov 1994 08:49:37 CET") == nil)
    }

    @Test("a date is a wait from now; one in the past is no wait")
    func dateWaits() {
        #expect(RetryAfter.nanoseconds("Sun, 06 Nov 1994 08:49:37 GMT", nowEpochSeconds: Self.example - 30) == 30_000_000_000)
        #expect(RetryAfter.nanoseconds("Sun, 06 Nov 1994 08:49:37 GMT", nowEpochSeconds: Self.example + 30) == 0)
        #expect(RetryAfter.nanoseconds("Sun, 06 Nov 1994 08:49:37 GMT", nowEpochSeconds: Self.example - 86_400) == nil)
    }
}
