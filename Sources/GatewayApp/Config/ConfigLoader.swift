import Foundation
import GatewayCore
import GatewayPolicy

/// Loads YAML files into Codable settings, applying environment overrides first.
///
/// The override rule: `KGW_` followed by the YAML path in upper case, levels joined by `__`, list items by their
/// index. `KGW_STORAGE=/data/gw.sqlite`, `KGW_LISTENERS__0__PORT=9443`, `KGW_UPSTREAM__CA_FILE=/etc/ca.pem`.
/// Values are read as YAML scalars, so numbers and booleans keep their types. A variable naming a key that does
/// not exist in the file adds it.
public enum ConfigLoader {
    /// The environment-variable prefix for overrides.
    public static let prefix = "KGW_"

    /// Loads `config/gateway.yaml` (or another path), with overrides from `environment`; `scope` says how much of
    /// it the command reads, and only that much is decoded and validated.
    public static func loadGateway(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment, scope: ConfigScope = .serving
    ) throws -> GatewayConfig {
        let url = URL(fileURLWithPath: path)
        var config: GatewayConfig = try load(
            GatewayConfig.self, path: path, environment: environment, overridePrefix: prefix, userInfo: [ConfigScope.userInfoKey: scope])
        config.baseDirectory = url.deletingLastPathComponent().path
        try validate(config, source: path, scope: scope)
        return config
    }

    /// Loads any Codable YAML file; `overridePrefix` nil applies no overrides.
    public static func load<T: Decodable>(
        _ type: T.Type, path: String, environment: [String: String] = [:], overridePrefix: String? = nil,
        userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws -> T {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try decode(type, yaml: text, source: path, environment: environment, overridePrefix: overridePrefix, userInfo: userInfo)
    }

    /// Decodes YAML text; errors name the key path that failed.
    public static func decode<T: Decodable>(
        _ type: T.Type, yaml text: String, source: String, environment: [String: String] = [:], overridePrefix: String? = nil,
        userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws -> T {
        try YAMLSettings.decode(type, yaml: text, source: source, environment: environment, overridePrefix: overridePrefix, userInfo: userInfo)
    }

    /// Rules that YAML types cannot express: plain HTTP only on loopback, sane limits, known log levels. The
    /// administration scope has only the master key's rule: the rest concerns sections it never decoded.
    static func validate(_ config: GatewayConfig, source: String, scope: ConfigScope = .serving) throws {
        if config.masterKey.file == nil && config.masterKey.environment == nil {
            throw ConfigError(source: source, reason: "master_key needs a file or an environment variable name")
        }
        guard scope == .serving else { return }
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
        if config.limits.headerReadTimeoutMs <= 0 || config.limits.idleTimeoutMs <= 0 || config.limits.maxConnections <= 0 {
            throw ConfigError(source: source, reason: "header_read_timeout_ms, idle_timeout_ms and max_connections must be positive")
        }
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(config.logLevel) {
            throw ConfigError(source: source, reason: "log_level '\(config.logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        // An admin token must not cross a network in clear text: off loopback, the admin listener needs TLS.
        if let tls = config.admin?.tls, (tls.clientCertificates ?? .none) != .none, tls.clientCA == nil {
            throw ConfigError(source: source, reason: "admin.tls asks for client certificates but names no client_ca")
        }
        if let admin = config.admin, admin.tls == nil, !isLoopback(admin.address) {
            throw ConfigError(
                source: source,
                reason: "admin listens on \(admin.address) without tls; plain HTTP is allowed on loopback addresses only (set admin.tls.certificate and admin.tls.private_key)")
        }
        if !["refuse", "forward"].contains(config.upstream.unknownOperations) {
            throw ConfigError(source: source, reason: "upstream.unknown_operations must be refuse or forward, not '\(config.upstream.unknownOperations)'")
        }
        if config.eventLoops < 0 {
            throw ConfigError(source: source, reason: "event_loops must be 0 (one per core) or a number of threads, not \(config.eventLoops)")
        }
        if config.upstream.drainSeconds < 0 || config.shutdownGraceSeconds < 0 {
            throw ConfigError(source: source, reason: "upstream.drain_seconds and shutdown_grace_seconds must not be negative")
        }
        if let problem = config.quotaLeasing.problems.first {
            throw ConfigError(source: source, reason: problem)
        }
        if let problem = config.tracing.problems.first {
            throw ConfigError(source: source, reason: problem)
        }
        if let problem = config.webhooks.problems.first {
            throw ConfigError(source: source, reason: problem)
        }
        if let problem = config.resilienceProblems().first {
            throw ConfigError(source: source, reason: problem)
        }
    }

    /// True for 127.0.0.0/8, ::1 and `localhost`.
    public static func isLoopback(_ address: String) -> Bool {
        address == "localhost" || address == "::1" || address == "[::1]" || address.hasPrefix("127.")
    }
}

/// How much of the config file a command reads. `serve` and `check` read all of it; the store commands (`keys`,
/// `partners`, `merchants`, `callers`, `releases`, `migrate`) read only `node_id`, `storage`, `master_key`,
/// `catalogue` and `policies`, so a broken listener, limit or upstream setting they never use does not stop them.
public enum ConfigScope: Sendable, Equatable {
    /// Everything, validated: what serving needs.
    case serving
    /// The store, the key ring, the catalogue and the policy files; other sections are neither decoded nor
    /// validated and keep their defaults.
    case administration

    /// Where the decoder finds the scope.
    static let userInfoKey = CodingUserInfoKey(rawValue: "klarna-gateway.config-scope")!
}
