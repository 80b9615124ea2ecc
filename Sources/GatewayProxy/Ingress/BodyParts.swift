import NIOCore

/// A body's parts in order, the first one held inline: most request and response bodies arrive as one part, and
/// then keeping them costs no array.
struct BodyParts {
    private var first: ByteBuffer?
    private var rest: [ByteBuffer] = []

    /// Adds a part at the end.
    mutating func append(_ part: ByteBuffer) {
        if first == nil { first = part } else { rest.append(part) }
    }

    /// Forgets every part.
    mutating func removeAll() {
        first = nil
        rest = []
    }

    /// Calls `body` with each part in order.
    func forEach(_ body: (ByteBuffer) throws -> Void) rethrows {
        guard let first else { return }
        try body(first)
        for part in rest { try body(part) }
    }
}
