#if canImport(Glibc)
import Glibc
#endif

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
        /// The literal segments' bytes back to back, and where each ends, beside its child in `literalNodes`.
        /// Found by comparing lengths and bytes in turn: a node has at most about a dozen, and hashing every
        /// segment (KRNs of 40 bytes among them) cost more than comparing, as did a `Substring` per segment.
        let literalBytes: [UInt8]
        let literalEnds: [Int]
        let literalNodes: [Node]
        let parameter: Node?
        /// The methods with an operation here, beside their operations.
        let methods: [String]
        let methodOperations: [Operation]
        /// The deepest path below this node, in segments: a longer path cannot match.
        let depth: Int

        init(literals: [Substring: Node], parameter: Node?, operations: [String: Operation]) {
            let literals = literals.sorted { $0.key < $1.key }
            literalBytes = literals.flatMap { Array($0.key.utf8) }
            literalEnds = literals.reduce(into: []) { ends, literal in ends.append((ends.last ?? 0) + literal.key.utf8.count) }
            literalNodes = literals.map(\.value)
            self.parameter = parameter
            let operations = operations.sorted { $0.key < $1.key }
            methods = operations.map(\.key)
            methodOperations = operations.map(\.value)
            depth = 1 + max(literalNodes.map(\.depth).max() ?? -1, parameter?.depth ?? -1)
        }

        /// The child for the literal segment `bytes`, if the node has one.
        func literal(_ bytes: UnsafeBufferPointer<UInt8>) -> Node? {
            // No template has an empty segment.
            guard !literalEnds.isEmpty, !bytes.isEmpty else { return nil }
            return literalBytes.withUnsafeBufferPointer { keys in
                var start = 0
                for (position, end) in literalEnds.enumerated() {
                    if end - start == bytes.count && memcmp(keys.baseAddress! + start, bytes.baseAddress!, bytes.count) == 0 {
                        return literalNodes[position]
                    }
                    start = end
                }
                return nil
            }
        }

        /// The operation for a method, if the node has one.
        func operation(_ method: String) -> Operation? {
            methods.firstIndex(of: method).map { methodOperations[$0] }
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
        // The trie is walked over the path's bytes and the segments' offsets, kept on the stack; the segments
        // become substrings once, for a match, in the one array the match keeps.
        let utf8 = path.utf8
        func segments(_ bounds: UnsafeBufferPointer<Range<Int>>) -> [Substring] {
            bounds.map { bound in
                path[utf8.index(utf8.startIndex, offsetBy: bound.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: bound.upperBound)]
            }
        }
        let found = utf8.withBytes { bytes in Self.find(in: root, path: bytes, segments: segments) }
        guard let (node, segments) = found else { return .failure(.noSuchPath) }
        guard let operation = node.operation(method) else { return .failure(.methodNotAllowed(allowed: node.methods)) }
        return .success(Match(operation: operation, segments: segments))
    }

    /// The node a path leads to and its segments (without the piece before the leading `/`), made by `segments`
    /// from their byte ranges.
    private static func find(
        in root: Node, path: UnsafeBufferPointer<UInt8>, segments: (UnsafeBufferPointer<Range<Int>>) -> [Substring]
    ) -> (Node, [Substring])? {
        guard var start = path.firstIndex(of: UInt8(ascii: "/")).map({ $0 + 1 }) else {
            // No `/`: nothing after the piece that is dropped, so the root, which holds no operation.
            return nil
        }
        // No template is deeper than the trie, so a path with more segments cannot match and is not split further.
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: root.depth + 1) { bounds in
            var count = 0
            while count < bounds.count {
                let end = path[start...].firstIndex(of: UInt8(ascii: "/")) ?? path.count
                bounds.initializeElement(at: count, to: start..<end)
                count += 1
                if end == path.count { break }
                start = end + 1
            }
            let found = UnsafeBufferPointer(rebasing: bounds[..<count])
            guard count <= root.depth, let node = walk(root, path, found) else { return nil }
            return (node, segments(found))
        }
    }

    /// Depth-first: literals win, and a parameter is tried when the literal branch leads nowhere.
    private static func walk(_ node: Node, _ path: UnsafeBufferPointer<UInt8>, _ rest: UnsafeBufferPointer<Range<Int>>) -> Node? {
        guard let head = rest.first else { return node.methods.isEmpty ? nil : node }
        let more = UnsafeBufferPointer(rebasing: rest.dropFirst())
        if let next = node.literal(UnsafeBufferPointer(rebasing: path[head])), let found = walk(next, path, more) { return found }
        if let next = node.parameter, !head.isEmpty, let found = walk(next, path, more) { return found }
        return nil
    }
}
