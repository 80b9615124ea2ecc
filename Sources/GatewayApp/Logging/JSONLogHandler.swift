import Foundation
import GatewayCore
import Logging
import NIOConcurrencyHelpers

/// swift-log handler writing one JSON object per line to standard error, so log shippers need no parser rules.
///
/// The level is shared by every logger the process makes and can be changed at run time (`setLevel`).
public struct JSONLogHandler: LogHandler {
    private static let sharedLevel = NIOLockedValueBox<Logger.Level>(.info)
    private static let output = NIOLockedValueBox<Void>(())

    private let label: String
    /// Metadata attached to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    /// Accepted for swift-log; the effective level is process-wide.
    public var logLevel: Logger.Level {
        get { JSONLogHandler.sharedLevel.withLockedValue { $0 } }
        set { JSONLogHandler.setLevel(newValue) }
    }

    /// Makes a handler for a logger label.
    public init(label: String) { self.label = label }

    /// The level in force for every logger in the process.
    public static var level: Logger.Level { sharedLevel.withLockedValue { $0 } }

    /// Changes the level of every logger in the process.
    public static func setLevel(_ level: Logger.Level) { sharedLevel.withLockedValue { $0 = level } }

    /// Metadata by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("time", JSONLogHandler.timestamp()), ("level", event.level.rawValue), ("logger", label),
            ("message", event.message.description),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) { fields.append((key, "\(value)")) }
        var line = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += "," }
            line += JSONText.quote(key) + ":" + JSONText.quote(value)
        }
        line += "}\n"
        JSONLogHandler.output.withLockedValue { _ in FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// RFC 3339 UTC with microseconds.
    static func timestamp() -> String {
        let now = UTCTime.now()
        return UTCTime.timestamp(epochSeconds: now.seconds, fraction: now.nanoseconds / 1000, digits: 6)
    }
}
