import Foundation
import GatewayCore
import GatewayPolicy
import GatewayPostgres
import GatewayStore
import GatewayVault

/// Where the key ring was loaded from; only a file can be rotated in place.
public enum MasterKeyOrigin: Sendable, Equatable, CustomStringConvertible {
    /// A key-ring file (absolute path).
    case file(String)
    /// An environment variable.
    case environment(String)

    /// `file /path` or `environment variable NAME`.
    public var description: String {
        switch self {
        case .file(let path): "file \(path)"
        case .environment(let name): "environment variable \(name)"
        }
    }
}

extension GatewayConfig {
    /// The SQLite file, resolved against the config file's directory (meaningless for a `postgres://` URL).
    public var storagePath: String { resolve(storage) }

    /// True when `storage` names a PostgreSQL database rather than a SQLite file.
    public var storageIsPostgres: Bool { PostgresURL.isPostgresURL(storage) }

    /// The storage location for messages: the SQLite path, or the URL without its password.
    public var storageDescription: String { GatewayConfig.describeStorage(storage, resolve: resolve) }

    /// A storage string for messages: a SQLite path resolved by `resolve`, or a URL without its password.
    public static func describeStorage(_ storage: String, resolve: (String) -> String = { $0 }) -> String {
        PostgresURL.isPostgresURL(storage) ? PostgresURL.redacted(storage) : resolve(storage)
    }

    /// The key-ring file, resolved against the config file's directory; nil when only a variable is configured.
    public var masterKeyFilePath: String? { masterKey.file.map(resolve) }

    /// Loads the master key ring: from the environment variable when it is configured and set, else from the file.
    ///
    /// The variable wins so that a container can inject the ring without a file; with neither available the
    /// error names both.
    public func loadMasterKeyRing(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (ring: MasterKeyRing, origin: MasterKeyOrigin) {
        if let name = masterKey.environment, let value = environment[name], !value.isEmpty {
            return (try MasterKeyRing.load(environmentVariable: name, environment: environment), .environment(name))
        }
        if let path = masterKeyFilePath {
            return (try MasterKeyRing.load(file: path), .file(path))
        }
        throw VaultError.environmentVariableMissing(name: masterKey.environment ?? "(none configured)")
    }

    /// Opens the configured store, PostgreSQL for a `postgres://` URL, else the SQLite file, and brings its schema
    /// up to date (refusing one newer than this binary); `migrate: false` opens without touching the schema.
    public func openStore(
        migrate: Bool = true, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> any GatewayStore {
        try await GatewayConfig.openStore(storage, resolve: resolve, migrate: migrate, environment: environment)
    }

    /// Opens a store named as in `storage` (used by `store copy` for its two ends).
    public static func openStore(
        _ storage: String, resolve: (String) -> String = { $0 }, migrate: Bool = true,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> any GatewayStore {
        let store: any GatewayStore
        if PostgresURL.isPostgresURL(storage) {
            let postgres = try PostgresStore(url: try PostgresURL(storage, environment: environment))
            // Fails at once with the server's reason (unreachable, wrong password, TLS refused), not a pool timeout.
            try await postgres.probe()
            store = postgres
        } else if storage.contains("://") {
            throw ConfigError(
                source: "storage", reason: "a SQLite file path or a postgres:// URL is supported, not \(PostgresURL.redacted(storage))")
        } else {
            store = try SQLiteStore(path: resolve(storage))
        }
        if migrate { try await store.migrate() }
        return store
    }
}
