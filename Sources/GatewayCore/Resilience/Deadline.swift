import Synchronization

/// Runs `body` in a task of its own and returns what it returns, or throws `timeoutError()` once `timeout` passed
/// first. Past the deadline the body is not waited for: it runs on in the background and its result is dropped.
///
/// For work that may wait forever on a peer, which cancellation cannot end: postgres-nio never answers a query
/// written to a connection that closed meanwhile, and a task group would wait for that child as long as it lasts.
@discardableResult
public func withDeadline<Result: Sendable>(
    _ timeout: Duration, _ timeoutError: @escaping @Sendable () -> any Error,
    _ body: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    let slot = DeadlineSlot<Result>()
    return try await withCheckedThrowingContinuation { continuation in
        slot.waiter.withLock { $0 = continuation }
        let timer = Task {
            // Cancelled means the body answered first: nothing to do.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            slot.waiter.withLock { $0.take() }?.resume(throwing: timeoutError())
        }
        Task {
            let result: Swift.Result<Result, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            // The answer is delivered before the timer is stopped, so the timer can never claim it.
            slot.waiter.withLock { $0.take() }?.resume(with: result)
            timer.cancel()
        }
    }
}

/// The caller's continuation, resumed by whichever of the body and the timer comes first.
private final class DeadlineSlot<Result: Sendable>: Sendable {
    let waiter = Mutex<CheckedContinuation<Result, any Error>?>(nil)
}
