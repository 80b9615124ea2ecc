import Dispatch
import GatewayPostgres
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
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
        try blockingWait(timeout: timeout) { outcome in
            self.query(query, logger: logger).whenComplete { outcome.finish($0.map(\.rows)) }
        }
    }

    /// Runs a prepared statement that returns no rows (postgres-nio prepares it on this connection's first use) and
    /// waits for it as `blockingQuery` does.
    func blockingExecute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, timeout: TimeAmount = .seconds(30)
    ) throws where Statement.Row == () {
        try blockingWait(timeout: timeout) { (outcome: BlockingOutcome<Void>) in
            // Started on this thread, which then writes the statement to the connection itself: a task started the
            // usual way would first wait for a thread of the pool, one more hop on every batch's round trip. It
            // tells this thread itself, where completing a promise would hop to the connection's loop first. What
            // runs after its first suspension runs on the connection's loop, never on the cooperative pool: a pool
            // kept busy elsewhere in the process left the answer unread until the deadline closed the connection.
            Task.immediate(executorPreference: EventLoopTaskExecutor(eventLoop)) {
                do {
                    // Its row stream, drained, rather than the overload giving the command tag, which postgres-nio
                    // asks for before the stream has finished and then stops the process.
                    for try await _ in try await self.execute(statement, logger: logger) {}
                    outcome.finish(.success(()))
                } catch {
                    outcome.finish(.failure(error))
                }
            }
        }
    }

    /// Waits on this thread with a deadline of its own: a timer on the connection's event loop, scheduled and
    /// cancelled from here for every statement, woke that loop twice per batch (docs/performance.md).
    private func blockingWait<Value: Sendable>(timeout: TimeAmount, _ start: (BlockingOutcome<Value>) -> Void) throws -> Value {
        // As `EventLoopFuture.wait()` refused: on an event loop this would block it, and every connection on it.
        precondition(MultiThreadedEventLoopGroup.currentEventLoop == nil, "a blocking PostgreSQL wait on an event loop")
        guard !isClosed else { throw AuditError.unavailable("the connection to PostgreSQL is closed") }
        let outcome = BlockingOutcome<Value>()
        start(outcome)
        guard let result = outcome.wait(timeout: timeout) else {
            let _: EventLoopFuture<Void> = close()
            throw AuditError.unavailable("PostgreSQL did not answer within \(timeout.nanoseconds / 1_000_000_000) s")
        }
        return try result.get()
    }
}

/// A statement's result, handed from whichever thread finishes it to the one thread waiting for it.
final class BlockingOutcome<Value: Sendable>: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let result = NIOLockedValueBox<Result<Value, Error>?>(nil)

    /// Sets the result and wakes the waiter; called once, by whatever ran the statement. After a timeout nobody
    /// reads it.
    func finish(_ result: Result<Value, Error>) {
        self.result.withLockedValue { $0 = result }
        done.signal()
    }

    /// The result, or nil when `timeout` passed first.
    func wait(timeout: TimeAmount) -> Result<Value, Error>? {
        guard done.wait(timeout: .now() + .nanoseconds(Int(timeout.nanoseconds))) == .success else { return nil }
        return result.withLockedValue { $0 }
    }
}

/// Runs a task's jobs on one event loop, so that a task preferring it never waits for a thread of the cooperative
/// pool (postgres-nio's async functions are nonisolated: without a preference they resume on the pool).
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
