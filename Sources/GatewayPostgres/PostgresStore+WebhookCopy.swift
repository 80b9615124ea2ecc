import GatewayCore
import NIOCore
import PostgresNIO

/// `store copy`'s side of the webhook tables. Ids are compared and sorted `COLLATE "C"` (byte order), the order
/// SQLite uses, so both stores page through the same events in the same order.
extension PostgresStore {
    /// Up to `limit` events after `afterEventID`, with their deliveries and attempts, read in one transaction.
    public func webhookEventCopies(after afterEventID: String?, limit: Int) async throws -> [WebhookEventCopy] {
        try await read { connection in
            let eventRows = try await connection.query(
                """
                SELECT \(unescaped: Self.eventColumns) FROM webhook_events
                WHERE \(afterEventID)::text IS NULL OR event_id COLLATE "C" > \(afterEventID)
                ORDER BY event_id COLLATE "C" LIMIT \(limit)
                """, logger: logger)
            let events = try await Self.events(eventRows)
            guard !events.isEmpty else { return [] }
            let ids = events.map(\.eventID)
            var deliveries: [String: [WebhookDeliveryRecord]] = [:]
            let deliveryRows = try await connection.query(
                """
                SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries WHERE event_id = ANY(\(ids)::text[])
                ORDER BY event_id COLLATE "C", destination COLLATE "C"
                """, logger: logger)
            for try await row in deliveryRows.decode((String, String, String, Int, Int64, Int?, String?).self) {
                deliveries[row.0, default: []].append(Self.delivery(row))
            }
            var attempts: [String: [WebhookAttemptRecord]] = [:]
            let attemptRows = try await connection.query(
                """
                SELECT event_id, destination, attempt, time_us, status, error, node_id FROM webhook_attempts WHERE event_id = ANY(\(ids)::text[])
                ORDER BY event_id COLLATE "C", time_us, destination COLLATE "C", attempt
                """, logger: logger)
            for try await (event, destination, attempt, time, status, error, node) in attemptRows.decode((String, String, Int, Int64, Int?, String?, String).self) {
                attempts[event, default: []].append(
                    WebhookAttemptRecord(destination: destination, attempt: attempt, timeMicros: time, status: status, error: error, nodeID: node))
            }
            return events.map { WebhookEventCopy(event: $0, deliveries: deliveries[$0.eventID] ?? [], attempts: attempts[$0.eventID] ?? []) }
        }
    }

    /// Writes copied events in one transaction; a stored id fails it (the primary key), and nothing of the batch stays.
    public func insertWebhookEventCopies(_ copies: [WebhookEventCopy]) async throws {
        guard !copies.isEmpty else { return }
        try await write { connection in
            for copy in copies { _ = try await Self.insertEvent(copy.event, ifNew: false, connection, logger) }
            let deliveries = copies.flatMap { copy in copy.deliveries.map { (eventID: copy.event.eventID, delivery: $0) } }
            if !deliveries.isEmpty {
                let records = deliveries.map { $0.delivery }
                // The flags stand for NULLs, which these array bindings cannot carry.
                try await connection.query(
                    """
                    INSERT INTO webhook_deliveries (event_id, destination, state, attempts, next_attempt_us, last_status, last_error)
                    SELECT e, d, st, a, nx, CASE WHEN has_status THEN s END, CASE WHEN has_error THEN err END
                    FROM unnest(\(deliveries.map { $0.eventID })::text[], \(records.map(\.destination))::text[], \(records.map(\.state.rawValue))::text[],
                        \(records.map(\.attempts))::int8[], \(records.map(\.nextAttemptMicros))::int8[], \(records.map { $0.lastStatus != nil })::bool[],
                        \(records.map { $0.lastStatus ?? 0 })::int8[], \(records.map { $0.lastError != nil })::bool[],
                        \(records.map { $0.lastError ?? "" })::text[])
                        AS o(e, d, st, a, nx, has_status, s, has_error, err)
                    """, logger: logger)
            }
            try await Self.insertAttempts(copies.flatMap { copy in copy.attempts.map { (eventID: copy.event.eventID, $0) } }, connection, logger)
        }
    }
}
