import Foundation
import GatewayCore
import Yams

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

/// Loads YAML files into Codable settings, applying environment overrides first.
///
/// The override rule: `KGW_` followed by the YAML path in upper case, levels joined by `__`, list items by their
/// index. `KGW_STORAGE=/data/gw.sqlite`, `KGW_LISTENERS__0__PORT=9443`, `KGW_UPSTREAM__CA_FILE=/etc/ca.pem`.
/// Values are read as YAML scalars, so numbers and booleans keep their types. A variable naming a key that does
/// not exist in the file adds it.
public enum ConfigLoader {
    /// The environment-variable prefix for overrides.
    public static let prefix = "KGW_"

    /// Loads `config/gateway.yaml` (or another path), with overrides from `environment`.
    public static func loadGateway(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GatewayConfig {
        let url = URL(fileURLWithPath: path)
        var config: GatewayConfig = try load(GatewayConfig.self, path: path, environment: environment, overridePrefix: prefix)
        config.baseDirectory = url.deletingLastPathComponent().path
        try validate(config, source: path)
        return config
    }

    /// Loads any Codable YAML file; `overridePrefix` nil applies no overrides.
    public static func load<T: Decodable>(
        _ type: T.Type, path: String, environment: [String: String] = [:], overridePrefix: String? = nil
    ) throws -> T {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try decode(type, yaml: text, source: path, environment: environment, overridePrefix: overridePrefix)
    }

    /// Decodes YAML text; errors name the key path that failed.
    public static func decode<T: Decodable>(
        _ type: T.Type, yaml text: String, source: String, environment: [String: String] = [:], overridePrefix: String? = nil
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
            return try YAMLDecoder().decode(type, from: node)
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

    /// Rules that YAML types cannot express: plain HTTP only on loopback, sane limits, known log levels.
    static func validate(_ config: GatewayConfig, source: String) throws {
        for listener in config.listeners {
            if listener.tls == nil && !isLoopback(listener.address) {
                throw ConfigError(
                    source: source,
                    reason: "listener '\(listener.name)' serves plain HTTP on \(listener.address); plain HTTP is allowed on loopback addresses only")
            }
            if let tls = listener.tls, tls.clientCertificates != .none, tls.clientCA == nil {
                throw ConfigError(source: source, reason: "listener '\(listener.name)' asks for client certificates but names no client_ca")
            }
        }
        if config.limits.maxBodyBytes <= 0 || config.limits.maxHeaderBytes <= 0 || config.limits.maxHeadersTotalBytes < config.limits.maxHeaderBytes {
            throw ConfigError(source: source, reason: "limits must be positive, and max_headers_total_bytes at least max_header_bytes")
        }
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(config.logLevel) {
            throw ConfigError(source: source, reason: "log_level '\(config.logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let admin = config.admin, !isLoopback(admin.address) {
            throw ConfigError(source: source, reason: "admin listens on \(admin.address); the admin listener (plain HTTP) is allowed on loopback addresses only")
        }
        if !["refuse", "forward"].contains(config.upstream.unknownOperations) {
            throw ConfigError(source: source, reason: "upstream.unknown_operations must be refuse or forward, not '\(config.upstream.unknownOperations)'")
        }
        if let problem = config.resilienceProblems().first {
            throw ConfigError(source: source, reason: problem)
        }
        if config.masterKey.file == nil && config.masterKey.environment == nil {
            throw ConfigError(source: source, reason: "master_key needs a file or an environment variable name")
        }
    }

    /// True for 127.0.0.0/8, ::1 and `localhost`.
    public static func isLoopback(_ address: String) -> Bool {
        address == "localhost" || address == "::1" || address == "[::1]" || address.hasPrefix("127.")
    }
}
