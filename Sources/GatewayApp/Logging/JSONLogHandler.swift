import GatewayCore
import Logging
import Synchronization

/// swift-log handler writing one JSON object per line to standard error, so log shippers need no parser rules.
///
/// The level is shared by every logger the process makes and can be changed at run time (`setLevel`). A line is
/// formatted and written by `LogWriter`'s own thread: the caller (often an event loop) only queues it.
public struct JSONLogHandler: LogHandler {
    /// The process-wide level, read on every log call from every event loop: an atomic, not a lock.
    private static let sharedLevel = Atomic<UInt8>(Logger.Level.info.code)

    private let label: String
    /// Metadata attached to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    /// Accepted for swift-log; the effective level is process-wide.
    public var logLevel: Logger.Level {
        get { JSONLogHandler.level }
        set { JSONLogHandler.setLevel(newValue) }
    }

    /// Makes a handler for a logger label.
    public init(label: String) { self.label = label }

    /// The level in force for every logger in the process.
    public static var level: Logger.Level { Logger.Level(code: sharedLevel.load(ordering: .relaxed)) }

    /// Changes the level of every logger in the process.
    public static func setLevel(_ level: Logger.Level) { sharedLevel.store(level.code, ordering: .relaxed) }

    /// Lines dropped because the writer fell too far behind (its queue was full).
    public static var droppedLines: Int { LogWriter.shared.dropped }

    /// Writes what is queued now, on the calling thread: before the process exits.
    public static func flush() { LogWriter.shared.flush() }

    /// Metadata by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Queues a call's access line (`AccessLogFields`) under `label`, with the logger's `metadata`.
    static func logCall(_ record: CallRecord, label: String, metadata: Logger.Metadata) {
        let now = UTCTime.now()
        LogWriter.shared.enqueue(LogLine(
            seconds: now.seconds, nanoseconds: now.nanoseconds, level: .info, label: label, message: AccessLogFields.message,
            handlerMetadata: metadata, eventMetadata: nil, call: record))
    }

    /// Queues one line.
    public func log(event: LogEvent) {
        let now = UTCTime.now()
        LogWriter.shared.enqueue(LogLine(
            seconds: now.seconds, nanoseconds: now.nanoseconds, level: event.level, label: label, message: event.message,
            handlerMetadata: metadata, eventMetadata: event.metadata))
    }
}

extension Logger.Level {
    /// The level as a small integer, for an atomic.
    fileprivate var code: UInt8 {
        switch self {
        case .trace: 0
        case .debug: 1
        case .info: 2
        case .notice: 3
        case .warning: 4
        case .error: 5
        case .critical: 6
        }
    }

    fileprivate init(code: UInt8) {
        switch code {
        case 0: self = .trace
        case 1: self = .debug
        case 2: self = .info
        case 3: self = .notice
        case 4: self = .warning
        case 5: self = .error
        default: self = .critical
        }
    }
}
