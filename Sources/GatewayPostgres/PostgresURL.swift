import Foundation
import GatewayCore
import NIOSSL
import PostgresNIO

/// A `postgres://` storage URL, parsed into a connection configuration.
///
/// Forms: `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full&sslrootcert=/etc/ca.pem`
/// (`postgresql://` too); `?host=/run/postgresql` for a Unix socket. The password may instead come from
/// `PGPASSWORD`, so it need not sit in a config file. `sslmode` follows libpq: `disable`, `prefer` (the default,
/// as in libpq: TLS when the server offers it, unverified), `require` (TLS, unverified unless `sslrootcert` is
/// given), `verify-ca` (chain only), `verify-full` (chain and host name). `pool_max` caps pooled connections
/// (default 10), `connect_timeout` is in seconds, `application_name` names the connections in `pg_stat_activity`.
public struct PostgresURL: Sendable, CustomStringConvertible {
    /// How TLS is used toward the server, as in libpq's `sslmode`.
    public enum SSLMode: String, Sendable, CaseIterable {
        /// Plain TCP only.
        case disable
        /// TLS if the server offers it, without checking its certificate.
        case prefer
        /// TLS always; the certificate is checked only against `sslrootcert` when one is given.
        case require
        /// TLS, certificate chain checked, host name not.
        case verifyCA = "verify-ca"
        /// TLS, certificate chain and host name checked.
        case verifyFull = "verify-full"
    }

    /// Host name or address; nil with a Unix socket.
    public var host: String?
    /// TCP port.
    public var port: Int
    /// Unix socket path (the directory form of libpq is accepted: `/run/postgresql` means its `.s.PGSQL.PORT`).
    public var unixSocketPath: String?
    /// Role name.
    public var username: String
    /// Password, if any; never printed.
    public var password: String?
    /// Database name.
    public var database: String
    /// TLS use.
    public var sslMode: SSLMode
    /// CA bundle to verify the server with; the system's roots when nil.
    public var sslRootCert: String?
    /// Most connections the pool opens.
    public var poolMax: Int
    /// How long to wait for a connection.
    public var connectTimeoutSeconds: Int
    /// `application_name` of the connections.
    public var applicationName: String

    /// True for strings the store should treat as a PostgreSQL URL rather than a SQLite path.
    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses a URL; `environment` supplies `PGPASSWORD` when the URL has no password.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard PostgresURL.isPostgresURL(text), let components = URLComponents(string: text) else {
            throw StoreError("not a postgres:// URL: \(PostgresURL.redacted(text))")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let known: Set<String> = ["sslmode", "sslrootcert", "host", "pool_max", "connect_timeout", "application_name"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw StoreError("unknown parameter \(unknown) in the storage URL (known: \(known.sorted().joined(separator: ", ")))")
        }
        username = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = components.password.flatMap { $0.removingPercentEncoding } ?? environment["PGPASSWORD"]
        port = components.port ?? 5432
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.removingPercentEncoding.flatMap { $0.isEmpty ? nil : $0 } ?? username
        if let socket = query["host"], socket.hasPrefix("/") {
            host = nil
            unixSocketPath = socket.hasSuffix(".s.PGSQL.\(port)") ? socket : socket + "/.s.PGSQL.\(port)"
        } else {
            var name = query["host"] ?? components.host ?? "localhost"
            if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
            host = name.isEmpty ? "localhost" : name
            unixSocketPath = nil
        }
        guard let mode = SSLMode(rawValue: query["sslmode"] ?? "prefer") else {
            throw StoreError("sslmode \(query["sslmode"] ?? "") is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        sslMode = mode
        sslRootCert = query["sslrootcert"].flatMap { $0.isEmpty ? nil : $0 }
        guard let poolMax = Int(query["pool_max"] ?? "10"), poolMax >= 1 else { throw StoreError("pool_max must be a positive number") }
        self.poolMax = poolMax
        guard let timeout = Int(query["connect_timeout"] ?? "10"), timeout >= 1 else {
            throw StoreError("connect_timeout must be a positive number of seconds")
        }
        connectTimeoutSeconds = timeout
        applicationName = query["application_name"] ?? "klarna-gateway"
    }

    /// The URL with any password replaced by `***`, for logs and error messages.
    public var description: String {
        let credentials = username + (password == nil ? "" : ":***")
        let location = unixSocketPath.map { "?host=\($0)" } ?? ""
        let server = host.map { $0.contains(":") ? "[\($0)]:\(port)" : "\($0):\(port)" } ?? ""
        return "postgres://\(credentials)@\(server)/\(database)\(location)"
    }

    /// Any URL-like text with its password hidden.
    public static func redacted(_ text: String) -> String {
        guard let components = URLComponents(string: text), components.password != nil else { return text }
        var copy = components
        copy.password = "***"
        return copy.string ?? "(unparsable URL)"
    }

    /// The postgres-nio client configuration.
    public func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let unixSocketPath {
            configuration = PostgresClient.Configuration(
                unixSocketPath: unixSocketPath, username: username, password: password, database: database)
        } else {
            configuration = PostgresClient.Configuration(
                host: host ?? "localhost", port: port, username: username, password: password, database: database,
                tls: try tls())
        }
        configuration.options.maximumConnections = poolMax
        configuration.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return configuration
    }

    func tls() throws -> PostgresClient.Configuration.TLS {
        guard let settings = try tlsSettings() else { return .disable }
        return sslMode == .prefer ? .prefer(settings) : .require(settings)
    }

    /// The same TLS choice for a single, unpooled connection (the start-up probe).
    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        guard let settings = try tlsSettings() else { return .disable }
        let context = try NIOSSLContext(configuration: settings)
        return sslMode == .prefer ? .prefer(context) : .require(context)
    }

    /// The connection configuration for one unpooled connection (the audit writer's, the listener's).
    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let unixSocketPath {
            configuration = PostgresConnection.Configuration(
                unixSocketPath: unixSocketPath, username: username, password: password, database: database)
        } else {
            configuration = PostgresConnection.Configuration(
                host: host ?? "localhost", port: port, username: username, password: password, database: database,
                tls: try connectionTLS())
        }
        configuration.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return configuration
    }

    /// TLS settings by `sslmode`; nil for `disable`.
    func tlsSettings() throws -> TLSConfiguration? {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let sslRootCert {
            guard FileManager.default.isReadableFile(atPath: sslRootCert) else {
                throw StoreError("sslrootcert \(sslRootCert) cannot be read")
            }
            tls.trustRoots = .file(sslRootCert)
        }
        switch sslMode {
        case .disable:
            return nil
        case .prefer:
            tls.certificateVerification = .none
        case .require:
            tls.certificateVerification = sslRootCert == nil ? .none : .noHostnameVerification
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
        case .verifyFull:
            tls.certificateVerification = .fullVerification
        }
        return tls
    }
}
