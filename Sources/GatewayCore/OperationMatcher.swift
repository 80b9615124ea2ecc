/// Finds the catalogue operation for a method and path by walking a trie of path segments.
///
/// One walk per request, literal segments before parameters, so the cost is proportional to the path's depth and
/// not to the catalogue's size. Segments are split on `/` only, so a KRN segment full of `:` is one segment.
public struct OperationMatcher: Sendable {
    /// A successful match.
    public struct Match: Sendable {
        /// The operation matched.
        public let operation: Operation
        /// The path's segments (without the leading empty one), as sent.
        public let segments: [Substring]

        init(operation: Operation, segments: [Substring]) {
            self.operation = operation
            self.segments = segments
        }
    }

    /// Why nothing matched.
    public enum Miss: Error, Sendable, Equatable {
        /// No operation has this path.
        case noSuchPath
        /// Operations exist for the path, but not with this method.
        case methodNotAllowed(allowed: [String])
    }

    final class Node: Sendable {
        let literals: [Substring: Node]
        let parameter: Node?
        let operations: [String: Operation]

        init(literals: [Substring: Node], parameter: Node?, operations: [String: Operation]) {
            self.literals = literals
            self.parameter = parameter
            self.operations = operations
        }
    }

    /// A mutable trie used only while building.
    private final class Builder {
        var literals: [Substring: Builder] = [:]
        var parameter: Builder?
        var operations: [String: Operation] = [:]

        func freeze() -> Node {
            Node(literals: literals.mapValues { $0.freeze() }, parameter: parameter?.freeze(), operations: operations)
        }
    }

    let root: Node

    /// Builds the trie; two operations with the same method and template shape are an error.
    public init(operations: [Operation]) throws {
        let root = Builder()
        for operation in operations {
            var node = root
            for segment in operation.templateSegments {
                if segment.hasPrefix("{") && segment.hasSuffix("}") {
                    if node.parameter == nil { node.parameter = Builder() }
                    node = node.parameter!
                } else {
                    if node.literals[segment] == nil { node.literals[segment] = Builder() }
                    node = node.literals[segment]!
                }
            }
            if let existing = node.operations[operation.method] {
                throw OperationCatalogue.ParseError(
                    line: 0, reason: "\(operation.id) and \(existing.id) have the same method and path shape"
                )
            }
            node.operations[operation.method] = operation
        }
        self.root = root.freeze()
    }

    /// Matches a path (no query string) that has already passed `RequestTarget` validation.
    public func match(method: String, path: Substring) -> Result<Match, Miss> {
        // The piece before the leading `/` is dropped; splitting after it makes one array, not two.
        let segments = path.utf8.first == UInt8(ascii: "/")
            ? path.dropFirst().fastSplit(UInt8(ascii: "/")) : Array(path.fastSplit(UInt8(ascii: "/")).dropFirst())
        guard let node = Self.walk(root, segments[...]) else { return .failure(.noSuchPath) }
        guard let operation = node.operations[method] else {
            return .failure(.methodNotAllowed(allowed: node.operations.keys.sorted()))
        }
        return .success(Match(operation: operation, segments: segments))
    }

    /// Depth-first: literals win, and a parameter is tried when the literal branch leads nowhere.
    private static func walk(_ node: Node, _ rest: ArraySlice<Substring>) -> Node? {
        guard let head = rest.first else { return node.operations.isEmpty ? nil : node }
        if let next = node.literals[head], let found = walk(next, rest.dropFirst()) { return found }
        if let next = node.parameter, !head.isEmpty, let found = walk(next, rest.dropFirst()) { return found }
        return nil
    }
}
