#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Testing
@testable import GatewayApp
import GatewayCore

/// The log writer: lines queued by callers come out of its own thread as one JSON object each, a full queue drops
/// (and counts) rather than blocking, and `flush` writes what is queued.
@Suite("Log writer")
struct LogWriterTests {
    static func line(_ message: String, level: Logger.Level = .info, metadata: Logger.Metadata? = nil) -> LogLine {
        LogLine(
            seconds: 1_767_225_600, nanoseconds: 123_456_000, level: level, label: "klarna-gateway", message: "\(message)",
            handlerMetadata: ["node": "n1"], eventMetadata: metadata)
    }

    /// Reads what arrived on `descriptor` until `lines` lines are there or 30 seconds pass: generous for a loaded
    /// machine, and still well short of the urgent test's 60 s linger.
    static func read(_ descriptor: Int32, lines: Int) -> [String] {
        var data = [UInt8]()
        let until = Date().addingTimeInterval(30)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while data.filter({ $0 == UInt8(ascii: "\n") }).count < lines && Date() < until {
            var poll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&poll, 1, 50) > 0 else { continue }
            let count = Glibc.read(descriptor, &buffer, buffer.count)
            if count > 0 { data += buffer[0..<count] }
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("lines come out as JSON objects with the fields in a fixed order, escaped")
    func format() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let writer = LogWriter(descriptor: fds[1], capacity: 100)
        writer.enqueue(Self.line("call", metadata: ["status": "200", "path": .string("/v2/\"quoted\"\n"), "z": .stringConvertible(42)]))
        let lines = Self.read(fds[0], lines: 1)
        #expect(lines == [
            #"{"time":"2026-01-01T00:00:00.123456Z","level":"info","logger":"klarna-gateway","message":"call","node":"n1","path":"/v2/\"quoted\"\n","status":"200","z":"42"}"#,
        ])
        let object = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String]
        #expect(object?["path"] == "/v2/\"quoted\"\n")
        #expect(object?["node"] == "n1")
    }

    @Test("a full queue drops and counts lines instead of blocking the caller; flush writes what is queued")
    func boundedAndFlushed() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        // A 1 MiB pipe (F_SETPIPE_SZ) holds every line, so the writer never blocks while this thread is not reading.
        #expect(fcntl(fds[1], 1031, 1 << 20) >= 0)
        let writer = LogWriter(descriptor: fds[1], capacity: 8)
        for index in 0..<5_000 { writer.enqueue(Self.line("line \(index)")) }
        writer.flush()
        let lines = Self.read(fds[0], lines: 5_000 - writer.dropped)
        #expect(writer.dropped > 0)
        #expect(lines.count == 5_000 - writer.dropped)
        // What was kept comes out whole and in the order it was queued.
        let numbers = lines.compactMap { line in
            line.range(of: #""message":"line "#).flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) }
        }
        #expect(numbers.count == lines.count)
        #expect(numbers == numbers.sorted())
    }

    @Test("a batch's lines share one second's date and each has its own fraction, zero-padded")
    func timeOfEachLine() {
        var stamp = JSONLogFormat.SecondStamp()
        var out: [UInt8] = []
        for (seconds, nanoseconds) in [(1_767_225_600, 5_000), (1_767_225_600, 999_999_000), (1_767_225_601, 0), (1_767_312_000, 120_000_000)] {
            var line = Self.line("tick")
            line.seconds = seconds
            line.nanoseconds = nanoseconds
            JSONLogFormat.append(line, to: &out, stamp: &stamp)
        }
        let times = String(decoding: out, as: UTF8.self).split(separator: "\n").map { $0.dropFirst(#"{"time":""#.count).prefix(27) }
        #expect(times == ["2026-01-01T00:00:00.000005Z", "2026-01-01T00:00:00.999999Z", "2026-01-01T00:00:01.000000Z", "2026-01-02T00:00:00.120000Z"])
    }

    @Test("lines queued close together are written as one batch, after the linger")
    func batched() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        // A linger long enough that a busy machine preempting this loop cannot split the batch, short of `read`'s 30 s.
        let writer = LogWriter(descriptor: fds[1], capacity: 1_000, linger: .seconds(5))
        for index in 0..<50 { writer.enqueue(Self.line("line \(index)")) }
        let lines = Self.read(fds[0], lines: 50)
        #expect(lines.count == 50)
        #expect(writer.batches == 1)
    }

    @Test("a line at warning is written at once, with the lines queued before it, without waiting for the linger")
    func urgentLineCutsTheLingerShort() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        // A linger far beyond `read`'s 30 seconds: the lines arrive in time only if the warning ends it.
        let writer = LogWriter(descriptor: fds[1], capacity: 1_000, linger: .seconds(60))
        writer.enqueue(Self.line("before"))
        writer.enqueue(Self.line("problem", level: .warning))
        let lines = Self.read(fds[0], lines: 2)
        #expect(lines.count == 2)
        #expect(lines.last?.contains(#""level":"warning""#) == true)
        #expect(writer.batches == 1)
    }

    @Test("an access line queued as a record comes out byte for byte as the same fields logged as metadata would")
    func accessLineFromRecord() throws {
        var record = CallRecord(phase: .outcome, requestID: "r-1", timeMicros: 0, method: "POST", path: "/v2/accounts/m1/payment/\"requests\"")
        record.facts.callerID = "checkout"
        record.facts.merchantID = "m1"
        record.facts.partnerID = "acq"
        record.facts.release = "2026-10-01"
        record.status = 429
        record.gatewayErrorCode = "GATEWAY_RATE_LIMITED"
        record.rateLimitRule = "merchant"
        record.upstreamLatencyMicros = 1234
        let bare = CallRecord(phase: .refusal, requestID: "r-2", timeMicros: 0, method: "GET", path: "/")
        for (record, handler) in [(record, ["node": "n1", "zone": "b", "caller": "overridden"] as Logger.Metadata), (bare, [:])] {
            var generic: [UInt8] = []
            var direct: [UInt8] = []
            let base = Self.line("call")
            var line = base
            line.handlerMetadata = handler
            line.eventMetadata = Logger.Metadata(uniqueKeysWithValues: AccessLogFields.fields(of: record))
            JSONLogFormat.append(line, to: &generic)
            line = base
            line.handlerMetadata = handler
            line.call = record
            JSONLogFormat.append(line, to: &direct)
            #expect(String(decoding: direct, as: UTF8.self) == String(decoding: generic, as: UTF8.self))
            let object = try JSONSerialization.jsonObject(with: Data(direct)) as? [String: String]
            #expect(object?["request_id"] == record.requestID)
            #expect(object?["status"] == String(record.status ?? 0))
        }
    }
}
