import Foundation
import Logging
import NIOConcurrencyHelpers

/// Collects every log line a gateway under test writes, rendered with its metadata, so tests can search them
/// for planted secrets.
final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    /// A logger writing into this capture.
    func logger(label: String = "gateway-under-test") -> Logger {
        Logger(label: label) { _ in Handler(capture: self) }
    }

    /// Everything logged so far.
    var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }

    fileprivate func append(_ line: String) { lines.withLockedValue { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.append("\(event.level) \(event.message) \(merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }
}
