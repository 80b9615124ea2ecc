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
/// The queue is bounded: past `capacity` lines waiting, new lines are dropped and counted (`dropped`), because a
/// gateway that slows every call to keep up with a stalled log pipe fails its callers for the sake of its logs.
final class LogWriter: Sendable {
    /// The process's writer (standard error).
    static let shared = LogWriter(descriptor: 2, capacity: 65_536)

    private struct Queue {
        var lines: [LogLine] = []
    }

    private let descriptor: Int32
    private let capacity: Int
    private let queue = NIOLockedValueBox(Queue())
    private let wake = ConditionLock(value: 0)
    private let droppedCount = Atomic<Int>(0)
    /// Held while a batch is taken and written, so that `flush` also waits for a batch the thread already took.
    private let writing = NIOLock()

    /// Lines dropped because the queue was full.
    var dropped: Int { droppedCount.load(ordering: .relaxed) }

    init(descriptor: Int32, capacity: Int) {
        self.descriptor = descriptor
        self.capacity = capacity
        let thread = LogWriterThread(writer: self)
        thread.start()
    }

    /// Queues a line; never blocks on I/O.
    func enqueue(_ line: LogLine) {
        let first: Bool? = queue.withLockedValue { queue in
            guard queue.lines.count < capacity else { return nil }
            queue.lines.append(line)
            return queue.lines.count == 1
        }
        guard let first else {
            droppedCount.add(1, ordering: .relaxed)
            return
        }
        if first {
            wake.lock()
            wake.unlock(withValue: 1)
        }
    }

    /// Writes everything queued before the call, on the caller's thread; for process exit.
    func flush() {
        writing.withLock {
            let lines = queue.withLockedValue { queue -> [LogLine] in
                defer { queue.lines.removeAll() }
                return queue.lines
            }
            write(lines)
        }
    }

    /// The writer thread's loop: waits for lines, formats a whole batch into one buffer, writes it.
    fileprivate func run() {
        var batch: [LogLine] = []
        while true {
            wake.lock(whenValue: 1)
            wake.unlock(withValue: 0)
            while true {
                let wrote = writing.withLock {
                    queue.withLockedValue { queue in swap(&queue.lines, &batch) }
                    write(batch)
                    defer { batch.removeAll(keepingCapacity: true) }
                    return !batch.isEmpty
                }
                if !wrote { break }
            }
        }
    }

    private func write(_ lines: [LogLine]) {
        guard !lines.isEmpty else { return }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(lines.count * 256)
        for line in lines { JSONLogFormat.append(line, to: &buffer) }
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
    static func append(_ line: LogLine, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"time":""#.utf8)
        out.append(contentsOf: UTCTime.timestamp(epochSeconds: line.seconds, fraction: line.nanoseconds / 1000, digits: 6).utf8)
        out.append(contentsOf: #"","level":""#.utf8)
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
