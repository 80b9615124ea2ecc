import Foundation
import GatewayCore
import GRDB

/// `store copy`'s side of the webhook tables: pages of events in byte order of their ids, and writes that keep
/// every state as it was.
extension SQLiteStore {
    /// Up to `limit` events after `afterEventID`, with their deliveries and attempts, read in one transaction.
    public func webhookEventCopies(after afterEventID: String?, limit: Int) async throws -> [WebhookEventCopy] {
        try await pool.read { db in
            let events = try Row.fetchAll(
                db, sql: "SELECT * FROM webhook_events WHERE ?1 IS NULL OR event_id > ?1 ORDER BY event_id LIMIT ?2", arguments: [afterEventID, limit]
            ).map(SQLiteStore.webhookEvent)
            guard let first = events.first?.eventID, let last = events.last?.eventID else { return [] }
            // The page is a contiguous range of ids, so its deliveries and attempts are one range scan each.
            var deliveries: [String: [WebhookDeliveryRecord]] = [:]
            let deliveryRows = try Row.fetchAll(
                db, sql: "SELECT * FROM webhook_deliveries WHERE event_id BETWEEN ? AND ? ORDER BY event_id, destination", arguments: [first, last])
            for row in deliveryRows { deliveries[row["event_id"], default: []].append(SQLiteStore.webhookDelivery(row)) }
            var attempts: [String: [WebhookAttemptRecord]] = [:]
            let attemptRows = try Row.fetchAll(
                db, sql: "SELECT * FROM webhook_attempts WHERE event_id BETWEEN ? AND ? ORDER BY event_id, time_us, destination, attempt",
                arguments: [first, last])
            for row in attemptRows { attempts[row["event_id"], default: []].append(SQLiteStore.webhookAttempt(row)) }
            return events.map { WebhookEventCopy(event: $0, deliveries: deliveries[$0.eventID] ?? [], attempts: attempts[$0.eventID] ?? []) }
        }
    }

    /// Writes copied events in one transaction; a stored id fails it (the primary key), and nothing of the batch stays.
    public func insertWebhookEventCopies(_ copies: [WebhookEventCopy]) async throws {
        try await pool.write { db in
            let event = try db.cachedStatement(sql: SQLiteStore.eventInsert)
            let delivery = try db.cachedStatement(sql: """
                INSERT INTO webhook_deliveries (event_id, destination, state, attempts, next_attempt_us, last_status, last_error)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            let attempt = try db.cachedStatement(
                sql: "INSERT INTO webhook_attempts (event_id, destination, attempt, time_us, status, error, node_id) VALUES (?, ?, ?, ?, ?, ?, ?)")
            for copy in copies {
                try event.execute(arguments: SQLiteStore.eventArguments(copy.event))
                for d in copy.deliveries {
                    try delivery.execute(arguments: [
                        copy.event.eventID, d.destination, d.state.rawValue, d.attempts, d.nextAttemptMicros, d.lastStatus, d.lastError,
                    ])
                }
                for a in copy.attempts {
                    try attempt.execute(arguments: [copy.event.eventID, a.destination, a.attempt, a.timeMicros, a.status, a.error, a.nodeID])
                }
            }
        }
    }
}
