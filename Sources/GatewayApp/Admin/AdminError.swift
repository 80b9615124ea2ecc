/// A refused admin operation: bad input, a missing record, or a rule broken; the message says what to fix and
/// never contains a secret.
public struct AdminError: Error, Sendable, CustomStringConvertible {
    /// What is wrong.
    public let message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }

    static func notFound(_ kind: String, _ id: String) -> AdminError { AdminError("no \(kind) with id '\(id)'") }
}
