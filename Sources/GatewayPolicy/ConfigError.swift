import Foundation

/// A configuration problem, with the file it is in and what to do about it.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    /// The file (or environment variable) at fault.
    public let source: String
    /// What is wrong.
    public let reason: String

    /// Makes an error.
    public init(source: String, reason: String) {
        self.source = source
        self.reason = reason
    }

    /// `source: reason`.
    public var description: String { "\(source): \(reason)" }
}
