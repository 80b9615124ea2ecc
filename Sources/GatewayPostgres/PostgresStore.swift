import Foundation
import GatewayCore
import Logging
import PostgresNIO

/// The shared store for several gateway instances: PostgreSQL through a postgres-nio connection pool.
///
/// Same semantics as `SQLiteStore`: every write runs in one transaction that bumps the `generation` row, and
/// commits a `NOTIFY kgw_changes` with it so that listening gateways reload at once (polling stays as the
/// fallback). Writers take the generation row's lock first, so they serialize the way SQLite's single writer
/// does: a key rotation that re-seals every secret cannot miss one written concurrently.
public final class PostgresStore: GatewayStore {
    /// The channel every write notifies and every gateway listens on.
    public static let changeChannel = "kgw_changes"

    /// Where the store is, password hidden.
    public let url: PostgresURL
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>

    /// Opens a pool to the database at `url` (not yet connected; the first query connects). Call `migrate()`
    /// before use, and `close()` when done.
    public init(url: PostgresURL, logger: Logger = Logger(label: "klarna-gateway.postgres", factory: { _ in SwiftLogNoOpLogHandler() })) throws {
        self.url = url
        self.logger = logger
        let client = PostgresClient(configuration: try url.clientConfiguration(), backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Opens the store at `url` and migrates it to the current schema.
    public static func open(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> PostgresStore {
        let store = try PostgresStore(url: try PostgresURL(text, environment: environment))
        do {
            try await store.probe()
            try await store.migrate()
        } catch {
            store.close()
            throw error
        }
        return store
    }

    /// Opens one unpooled connection and closes it again: an unreachable server, a wrong password or a refused
    /// `sslmode` then fails at once with the server's reason, where the pool would retry until it times out.
    public func probe() async throws {
        do {
            let connection = try await PostgresConnection.connect(
                on: PostgresClient.defaultEventLoopGroup.next(), configuration: try url.connectionConfiguration(), id: 0,
                logger: logger
            ).get()
            try await connection.close()
        } catch {
            throw PostgresStore.storeError(error, url: url)
        }
    }

    /// Closes every pooled connection; the store cannot be used afterwards.
    public func close() {
        runner.cancel()
    }

    deinit {
        runner.cancel()
    }

    /// Runs `body` in a read-only transaction with a snapshot of the database as of its first query, so that
    /// several reads agree with each other and with the generation.
    func read<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }

    /// Runs `body` in a write transaction; `body` must call `lockWrites` first if it bumps the generation. The
    /// task's pending change-log event (`AdminEvent.pending`) is appended in the same transaction, unless the
    /// write changed nothing, so a change and its event commit together.
    func write<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        guard let event = AdminEvent.pending else { return try await transaction("BEGIN", body) }
        return try await transaction("BEGIN") { connection in
            let result = try await body(connection)
            if !AdminEvent.changedNothing(result) { try await PostgresStore.insert(event, connection, logger) }
            return result
        }
    }

    private func transaction<Result: Sendable>(
        _ begin: PostgresQuery, _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await client.withConnection { connection in
                try await connection.query(begin, logger: logger)
                do {
                    let result = try await body(connection)
                    try await connection.query("COMMIT", logger: logger)
                    return result
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        } catch {
            throw PostgresStore.storeError(error, url: url)
        }
    }

    /// Takes the writers' lock (the generation row) at the start of a write transaction.
    static func lockWrites(_ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query("SELECT value FROM meta WHERE key = 'generation' FOR UPDATE", logger: logger)
    }

    /// Bumps the generation and queues the notification, both committed (or not) with the transaction.
    static func bumpGeneration(_ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query(
            """
            WITH bumped AS (UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value)
            SELECT pg_notify(\(changeChannel), value::text) FROM bumped
            """, logger: logger)
    }

    static func readGeneration(_ connection: PostgresConnection, _ logger: Logger) async throws -> Int64 {
        let rows = try await connection.query("SELECT value FROM meta WHERE key = 'generation'", logger: logger)
        for try await value in rows.decode(Int64.self) { return value }
        return 0
    }

    /// A `StoreError` that says what the server said (message, detail, SQL state), never the query's parameters,
    /// which may hold sealed secrets or token hashes.
    public static func storeError(_ error: any Error, url: PostgresURL) -> any Error {
        if error is StoreError { return error }
        guard let psql = error as? PSQLError else { return StoreError("PostgreSQL store \(url): \(error)") }
        if let message = psql.serverInfo?[.message] {
            var text = "PostgreSQL store \(url): \(message)"
            if let detail = psql.serverInfo?[.detail] { text += " (\(detail))" }
            if let state = psql.serverInfo?[.sqlState] { text += " [SQLSTATE \(state)]" }
            return StoreError(text)
        }
        let underlying = psql.underlying.map { ": \($0)" } ?? ""
        return StoreError("PostgreSQL store \(url): \(psql.code)\(underlying)")
    }
}
