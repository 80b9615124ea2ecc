/// Secret material in memory (an API key, a private key PEM, a token).
///
/// Its descriptions are redacted so that a secret interpolated into a log line, an error or a test failure by
/// mistake prints `<redacted>` instead of itself; code that must send it reads `exposedValue` on purpose.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself; read only where it leaves for Klarna or is sealed.
    public let exposedValue: String

    /// Wraps a secret value.
    public init(_ value: String) { self.exposedValue = value }

    /// Always `<redacted>`.
    public var description: String { "<redacted>" }
    /// Always `<redacted>`.
    public var debugDescription: String { "<redacted>" }

    /// The last four characters, the most any listing shows of a key.
    public var hint: String { "…" + String(exposedValue.suffix(4)) }
}

extension Secret: CustomReflectable {
    /// Hides the value from `dump` and reflection-based printers too.
    public var customMirror: Mirror { Mirror(self, children: []) }
}
