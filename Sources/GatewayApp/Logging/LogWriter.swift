#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// One log event as the caller handed it over: formatting happens on the writer's thread, not the caller's.
struct LogLine: Sendable {
    var seconds: Int
    var nanoseconds: Int
    var level: Logger.Level
    var label: String
    var message: Logger.Message
    var handlerMetadata: Logger.Metadata
    var eventMetadata: Logger.Metadata?
    /// An access line: the call's record, whose fields (`AccessLogFields`) are the line's event metadata, made on
    /// the writer's thread instead of as a dictionary on the event loop.
    var call: CallRecord?
}

/// Writes log lines to standard error from a thread of its own, so that no event loop waits on a `write(2)` or on
/// formatting: a caller only appends to a queue.
///
/// Lines are written in batches, up to `linger` late (as nginx's buffered `access_log` does): at `info` every call
/// queues an access line, and waking the thread for each one cost a futex wake-up and a context switch per call. A
/// line at `warning` or above is written at once, with whatever is queued before it.
///
/// The queue is bounded: past `capacity` lines waiting, new lines are dropped and counted (`dropped`), because a
/// gateway that slows every call to keep up with a stalled log pipe fails its callers for the sake of its logs.
final class LogWriter: Sendable {
    /// The process's writer (standard error).
    static let shared = LogWriter(descriptor: 2, capacity: 65_536)

    private let descriptor: Int32
    private let linger: Duration
    private let queue: LogLineQueue
    private let droppedCount = Atomic<Int>(0)
    private let batchCount = Atomic<Int>(0)
    /// Held while a batch is taken and written, so that `flush` also waits for a batch the thread already took; it
    /// guards the formatter's timestamp of the current second, which every line of a batch shares.
    private let writing = NIOLockedValueBox(JSONLogFormat.SecondStamp())

    /// Lines dropped because the queue was full.
    var dropped: Int { droppedCount.load(ordering: .relaxed) }

    /// Batches written so far.
    var batches: Int { batchCount.load(ordering: .relaxed) }

    init(descriptor: Int32, capacity: Int, linger: Duration = .milliseconds(10)) {
        self.descriptor = descriptor
        self.linger = linger
        queue = LogLineQueue(capacity: capacity)
        let thread = LogWriterThread(writer: self)
        thread.start()
    }

    /// Queues a line; never blocks on I/O.
    func enqueue(_ line: LogLine) {
        if !queue.append(line, urgent: line.level >= .warning) {
            droppedCount.add(1, ordering: .relaxed)
        }
    }

    /// Writes everything queued before the call, on the caller's thread; for process exit.
    func flush() {
        writing.withLockedValue { stamp in
            var lines: [LogLine] = []
            queue.take(into: &lines)
            write(lines, stamp: &stamp)
        }
    }

    /// The writer thread's loop: waits for a batch, formats it into one buffer, writes it.
    fileprivate func run() {
        var batch: [LogLine] = []
        while true {
            queue.waitForBatch(linger: linger)
            writing.withLockedValue { stamp in
                queue.take(into: &batch)
                write(batch, stamp: &stamp)
            }
            batch.removeAll(keepingCapacity: true)
        }
    }

    private func write(_ lines: [LogLine], stamp: inout JSONLogFormat.SecondStamp) {
        guard !lines.isEmpty else { return }
        batchCount.add(1, ordering: .relaxed)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(lines.count * 256)
        for line in lines { JSONLogFormat.append(line, to: &buffer, stamp: &stamp) }
        buffer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// `write(2)`, named apart from the writer's own `write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(descriptor, bytes, count)
    #else
    Darwin.write(descriptor, bytes, count)
    #endif
}

/// The writer's thread: a plain pthread, so that it is never one of the event loops' or the cooperative pool's.
private final class LogWriterThread: @unchecked Sendable {
    // @unchecked: `writer` is immutable and Sendable; the class only carries it into the thread.
    let writer: LogWriter

    init(writer: LogWriter) { self.writer = writer }

    func start() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let started = pthread_create(&thread, nil, { context in
            let this = Unmanaged<LogWriterThread>.fromOpaque(context!).takeRetainedValue()
            this.writer.run()
            return nil
        }, context)
        precondition(started == 0, "cannot start the log writer thread")
        pthread_detach(thread)
    }
}

/// One JSON object per line: `time`, `level`, `logger`, `message`, then the metadata sorted by key.
enum JSONLogFormat {
    /// The `time` text of one second up to its fraction (`2026-01-01T00:00:00.`): made once per second, not per
    /// line, because rendering a date (`gmtime_r` and a dozen small strings) was most of what a line cost.
    struct SecondStamp: Sendable {
        var second = Int.min
        var text: [UInt8] = []
    }

    static func append(_ line: LogLine, to out: inout [UInt8]) {
        var stamp = SecondStamp()
        append(line, to: &out, stamp: &stamp)
    }

    static func append(_ line: LogLine, to out: inout [UInt8], stamp: inout SecondStamp) {
        out.append(contentsOf: #"{"time":""#.utf8)
        if stamp.second != line.seconds {
            let whole = UTCTime.timestamp(epochSeconds: line.seconds, fraction: 0, digits: 6)
            stamp = SecondStamp(second: line.seconds, text: Array(whole.utf8.dropLast(7)))
        }
        out.append(contentsOf: stamp.text)
        var micros = line.nanoseconds / 1000
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { digits in
            for index in stride(from: 5, through: 0, by: -1) {
                digits[index] = UInt8(ascii: "0") + UInt8(micros % 10)
                micros /= 10
            }
            out.append(contentsOf: digits)
        }
        out.append(contentsOf: #"Z","level":""#.utf8)
        out.append(contentsOf: line.level.rawValue.utf8)
        out.append(contentsOf: #"","logger":"#.utf8)
        JSONText.appendQuoted(line.label, to: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSONText.appendQuoted(line.message.description, to: &out)
        for (key, value) in sortedMetadata(of: line) {
            out.append(UInt8(ascii: ","))
            JSONText.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case .string(let text): JSONText.appendQuoted(text, to: &out)
            default: JSONText.appendQuoted(value.description, to: &out)
            }
        }
        out.append(contentsOf: "}\n".utf8)
    }

    /// The line's metadata in key order; of two values for one key, the event's (or the call's) wins.
    private static func sortedMetadata(of line: LogLine) -> [(key: String, value: Logger.Metadata.Value)] {
        guard let call = line.call else {
            var merged = line.handlerMetadata
            if let event = line.eventMetadata { merged.merge(event) { _, new in new } }
            return merged.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        }
        // The call's fields are in key order already; the logger's own (a key or two) go in among them.
        var merged = AccessLogFields.fields(of: call)
        for (key, value) in line.handlerMetadata where !merged.contains(where: { $0.key == key }) {
            merged.insert((key, value), at: merged.firstIndex { $0.key > key } ?? merged.endIndex)
        }
        return merged
    }

}
