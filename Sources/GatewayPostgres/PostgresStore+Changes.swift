import GatewayCore
import PostgresNIO

extension PostgresStore {
    /// Listens on `kgw_changes` and calls `onChange` for every notification, until the calling task is cancelled.
    ///
    /// One pooled connection is held for the listen. `onChange` is also called once each time the listen is
    /// established, since a change committed before it notified nobody here. When the connection drops (a
    /// PostgreSQL restart), the listen resumes after a back-off of at most 5 s; the gateway's own polling covers
    /// the time in between.
    public func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool {
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: PostgresStore.changeChannel) { notifications in
                        backoff = .milliseconds(100)
                        // The listen is registered before this runs: a change from here on is not missed. One
                        // committed before it (while reconnecting, or the first time, between the snapshot's
                        // first load and this listen) notified nobody here, so every listen starts with a check.
                        onChange()
                        for try await _ in notifications { onChange() }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.warning("listening for store changes failed; retrying", metadata: ["error": "\(PostgresStore.storeError(error, url: url))"])
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        return true
    }
}
