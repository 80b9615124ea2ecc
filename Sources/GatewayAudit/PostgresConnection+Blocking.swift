import GatewayPostgres
import Logging
import NIOCore
import PostgresNIO

extension PostgresConnection {
    /// Opens one unpooled connection, waiting on the calling thread; failures say what the server said.
    static func blockingConnect(_ url: PostgresURL, id: Int, logger: Logger) throws -> PostgresConnection {
        do {
            return try PostgresConnection.connect(
                on: PostgresClient.defaultEventLoopGroup.next(), configuration: try url.connectionConfiguration(), id: id, logger: logger
            ).wait()
        } catch {
            throw PostgresStore.storeError(error, url: url)
        }
    }

    /// Runs `query` and waits for its rows on the calling thread, which may block (the audit worker, the CLI),
    /// failing after `timeout` instead of waiting forever.
    ///
    /// postgres-nio never answers a query sent on a connection that has already closed (the write fails unseen), so
    /// a closed connection is refused here first; the deadline covers a server that stops answering while the
    /// connection stays up. A timed-out connection is closed: its state is unknown.
    func blockingQuery(_ query: PostgresQuery, logger: Logger, timeout: TimeAmount = .seconds(30)) throws -> [PostgresRow] {
        try blockingWait(timeout: timeout) { self.query(query, logger: logger).cascade(to: $0) }.rows
    }

    /// Runs a prepared statement that returns no rows (postgres-nio prepares it on this connection's first use) and
    /// waits for it as `blockingQuery` does.
    func blockingExecute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, timeout: TimeAmount = .seconds(30)
    ) throws where Statement.Row == () {
        try blockingWait(timeout: timeout) { (promise: EventLoopPromise<Void>) in
            // Started on this thread, which then writes the statement to the connection itself: a task started the
            // usual way would first wait for a thread of the pool, one more hop on every batch's round trip.
            Task.immediate {
                do {
                    // Its row stream, drained, rather than the overload giving the command tag, which postgres-nio
                    // asks for before the stream has finished and then stops the process.
                    for try await _ in try await self.execute(statement, logger: logger) {}
                    promise.succeed(())
                } catch {
                    promise.fail(error)
                }
            }
        }
    }

    private func blockingWait<Value: Sendable>(timeout: TimeAmount, _ start: (EventLoopPromise<Value>) -> Void) throws -> Value {
        guard !isClosed else { throw AuditError.unavailable("the connection to PostgreSQL is closed") }
        let promise = eventLoop.makePromise(of: Value.self)
        start(promise)
        let deadline = eventLoop.scheduleTask(in: timeout) {
            promise.fail(AuditError.unavailable("PostgreSQL did not answer within \(timeout.nanoseconds / 1_000_000_000) s"))
            let _: EventLoopFuture<Void> = self.close()
        }
        defer { deadline.cancel() }
        return try promise.futureResult.wait()
    }
}
