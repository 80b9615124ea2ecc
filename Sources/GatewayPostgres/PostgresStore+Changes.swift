import GatewayCore
import PostgresNIO

extension PostgresStore {
    /// Listens on `kgw_changes` and calls `onChange` for every notification, until the calling task is cancelled.
    ///
    /// One pooled connection is held for the listen. When it drops (a PostgreSQL restart), `onChange` is called
    /// once more after reconnecting, since notifications sent meanwhile are lost, and the listen resumes after a
    /// back-off of at most 5 s. The gateway's own polling covers the time in between.
    public func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool {
        var backoff = Duration.milliseconds(100)
        var reconnected = false
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: PostgresStore.changeChannel) { notifications in
                        backoff = .milliseconds(100)
                        // The listen is registered before this runs: a change from here on is not missed.
                        if reconnected { onChange() }
                        for try await _ in notifications { onChange() }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.warning("listening for store changes failed; retrying", metadata: ["error": "\(PostgresStore.storeError(error, url: url))"])
            }
            reconnected = true
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        return true
    }
}
