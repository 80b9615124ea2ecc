import Foundation
import Yams

/// YAML text into Codable settings, with environment overrides applied to the node tree first (the rule is
/// described on `ConfigLoader`). Pure: no file access, so policy parsing can be fuzzed and tested on strings.
public enum YAMLSettings {
    /// Decodes YAML text; errors name the key path that failed. `userInfo` reaches the types' decoders.
    public static func decode<T: Decodable>(
        _ type: T.Type, yaml text: String, source: String, environment: [String: String] = [:], overridePrefix: String? = nil,
        userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws -> T {
        var node: Node
        do {
            node = try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
        } catch {
            throw ConfigError(source: source, reason: "not valid YAML: \(error)")
        }
        if let overridePrefix {
            for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(overridePrefix) {
                let path = name.dropFirst(overridePrefix.count).components(separatedBy: "__").map { $0.lowercased() }
                guard !path.contains(where: \.isEmpty) else { continue }
                let scalar = (try? Yams.compose(yaml: value)) ?? Node(value)
                node = set(node, path: path[...], to: scalar, source: name)
            }
        }
        do {
            return try YAMLDecoder().decode(type, from: node, userInfo: userInfo)
        } catch let error as DecodingError {
            throw ConfigError(source: source, reason: describe(error))
        } catch {
            throw ConfigError(source: source, reason: "\(error)")
        }
    }

    private static func set(_ node: Node, path: ArraySlice<String>, to value: Node, source: String) -> Node {
        guard let key = path.first else { return value }
        var node = node
        if case .sequence(let sequence) = node, let index = Int(key), sequence.indices.contains(index) {
            node[Node(String(index), Tag(.int))] = set(sequence[index], path: path.dropFirst(), to: value, source: source)
            return node
        }
        if node.mapping == nil { node = .mapping(Node.Mapping([])) }
        let child = node[key] ?? Node.mapping(Node.Mapping([]))
        node[Node(key)] = set(child, path: path.dropFirst(), to: value, source: source)
        return node
    }

    /// A decoding error as `key.path: what is wrong`.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing key '\(parent.isEmpty ? "" : parent + ".")\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "'\(path(context.codingPath))': \(context.debugDescription)"
        case .dataCorrupted(let context):
            return "'\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
