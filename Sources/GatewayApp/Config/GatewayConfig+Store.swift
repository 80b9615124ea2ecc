import Foundation
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
    /// The SQLite file, resolved against the config file's directory.
    public var storagePath: String { resolve(storage) }

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

    /// Opens and migrates the configured store.
    public func openStore() async throws -> SQLiteStore {
        guard !storage.contains("://") else {
            throw ConfigError(source: "storage", reason: "only a SQLite file path is supported, not \(storage)")
        }
        return try await SQLiteStore.open(path: storagePath)
    }
}
