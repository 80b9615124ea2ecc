/// A store that cannot be opened or used as asked.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the file; never record contents.
    public let message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
