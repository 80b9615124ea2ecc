import Foundation
import GatewayCore
import GRDB

/// Webhook events and deliveries in the SQLite file. The store runs WAL with SQLite's default `synchronous=FULL`,
/// so a committed event survives a crash and a power loss: the listener answers Klarna only after that commit.
extension SQLiteStore: WebhookStore {
    /// Stores events that are new, with their deliveries, in one transaction (the listener's group commit).
    public func saveWebhookEvents(_ events: [NewWebhookEvent]) async throws -> [Bool] {
        try await pool.write { db in
            let insertEvent = try db.cachedStatement(sql: SQLiteStore.eventInsert + " ON CONFLICT (event_id) DO NOTHING")
            let insertDelivery = try db.cachedStatement(sql: """
                INSERT INTO webhook_deliveries (event_id, destination, state, attempts, next_attempt_us) VALUES (?, ?, 'pending', 0, ?)
                """)
            var stored: [Bool] = []
            stored.reserveCapacity(events.count)
            for new in events {
                let event = new.event
                try insertEvent.execute(arguments: SQLiteStore.eventArguments(event))
                let isNew = db.changesCount > 0
                stored.append(isNew)
                guard isNew else { continue }
                for destination in new.destinations {
                    try insertDelivery.execute(arguments: [event.eventID, destination, event.receivedAtMicros])
                }
            }
            return stored
        }
    }

    /// Events matching `query`, newest first.
    public func webhookEvents(_ query: WebhookEventQuery) async throws -> [WebhookEventRecord] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let merchant = query.merchantID {
            conditions.append("merchant_id = ?")
            arguments += [merchant]
        }
        if let state = query.state {
            conditions.append("state = ?")
            arguments += [state.rawValue]
        }
        if let since = query.sinceMicros {
            conditions.append("received_at_us >= ?")
            arguments += [since]
        }
        arguments += [query.limit]
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let bound = arguments
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_events \(filter) ORDER BY received_at_us DESC, event_id LIMIT ?", arguments: bound)
                .map(SQLiteStore.webhookEvent)
        }
    }

    /// One event.
    public func webhookEvent(id: String) async throws -> WebhookEventRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM webhook_events WHERE event_id = ?", arguments: [id]).map(SQLiteStore.webhookEvent)
        }
    }

    /// An event's deliveries, by destination.
    public func webhookDeliveries(eventID: String) async throws -> [WebhookDeliveryRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_deliveries WHERE event_id = ? ORDER BY destination", arguments: [eventID])
                .map(SQLiteStore.webhookDelivery)
        }
    }

    /// An event's attempts, oldest first.
    public func webhookAttempts(eventID: String) async throws -> [WebhookAttemptRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_attempts WHERE event_id = ? ORDER BY time_us, destination", arguments: [eventID])
                .map(SQLiteStore.webhookAttempt)
        }
    }

    /// Claims due deliveries for `owner`; SQLite's single writer makes the select and the lease one step.
    public func claimWebhookDeliveries(
        owner: String, destination: String, nowMicros: Int64, leaseMicros: Int64, limit: Int
    ) async throws -> [ClaimedWebhookDelivery] {
        return try await pool.write { db in
            let arguments: StatementArguments = [destination, nowMicros, nowMicros, limit]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT d.*, e.partner_id, e.signing_key_id, e.event_type, e.account, e.merchant_id, e.received_at_us, e.state AS event_state, e.body
                    FROM webhook_deliveries d JOIN webhook_events e ON e.event_id = d.event_id
                    WHERE d.destination = ? AND d.state = 'pending' AND d.next_attempt_us <= ? AND (d.lease_until_us IS NULL OR d.lease_until_us < ?)
                    ORDER BY d.next_attempt_us LIMIT ?
                    """, arguments: arguments)
            let lease = try db.cachedStatement(sql: "UPDATE webhook_deliveries SET lease_owner = ?, lease_until_us = ? WHERE event_id = ? AND destination = ?")
            return try rows.map { row in
                let claimed = SQLiteStore.claimed(row)
                try lease.execute(arguments: [owner, nowMicros + leaseMicros, claimed.delivery.eventID, claimed.delivery.destination])
                return claimed
            }
        }
    }

    /// Frees every lease `owner` holds.
    public func releaseWebhookLeases(owner: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until_us = NULL WHERE lease_owner = ?", arguments: [owner])
        }
    }

    /// Records attempts and their verdicts in one transaction; a delivery already delivered or dead (another
    /// instance's verdict after a lease was taken over) is left as it is.
    public func completeWebhookDeliveries(_ outcomes: [WebhookDeliveryOutcome]) async throws {
        try await pool.write { db in
            let attempt = try db.cachedStatement(
                sql: "INSERT INTO webhook_attempts (event_id, destination, attempt, time_us, status, error, node_id) VALUES (?, ?, ?, ?, ?, ?, ?)")
            let update = try db.cachedStatement(sql: """
                UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_us = ?, last_status = ?, last_error = ?,
                    lease_owner = NULL, lease_until_us = NULL
                WHERE event_id = ? AND destination = ? AND state = 'pending'
                """)
            for outcome in outcomes {
                try attempt.execute(arguments: [
                    outcome.eventID, outcome.destination, outcome.attempt, outcome.timeMicros, outcome.status, outcome.error, outcome.nodeID,
                ])
                try update.execute(arguments: [
                    outcome.state.rawValue, outcome.attempt, outcome.nextAttemptMicros, outcome.status, outcome.error, outcome.eventID,
                    outcome.destination,
                ])
            }
            for eventID in Set(outcomes.map(\.eventID)) { try SQLiteStore.refreshEventState(db, eventID: eventID) }
        }
    }

    /// Makes deliveries pending again, due now, attempts counted from zero.
    public func replayWebhookDeliveries(eventID: String?, destination: String?, includeDelivered: Bool, nowMicros: Int64) async throws -> Int {
        var conditions = [includeDelivered ? "state IN ('dead', 'delivered')" : "state = 'dead'"]
        var filterArguments: StatementArguments = []
        if let eventID {
            conditions.append("event_id = ?")
            filterArguments += [eventID]
        }
        if let destination {
            conditions.append("destination = ?")
            filterArguments += [destination]
        }
        let filter = conditions.joined(separator: " AND ")
        let selected = filterArguments
        return try await change { db in
            let events = try String.fetchAll(db, sql: "SELECT DISTINCT event_id FROM webhook_deliveries WHERE \(filter)", arguments: selected)
            var update: StatementArguments = [nowMicros]
            update += selected
            try db.execute(
                sql: """
                    UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_us = ?, lease_owner = NULL, lease_until_us = NULL,
                        last_status = NULL, last_error = NULL WHERE \(filter)
                    """, arguments: update)
            let count = db.changesCount
            for event in events { try SQLiteStore.refreshEventState(db, eventID: event) }
            return count
        }
    }

    /// The oldest due time among pending deliveries, per destination.
    public func oldestPendingWebhookDeliveries() async throws -> [String: Int64] {
        try await pool.read { db in
            var oldest: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT destination, MIN(next_attempt_us) FROM webhook_deliveries WHERE state = 'pending' GROUP BY destination") {
                oldest[row[0]] = row[1]
            }
            return oldest
        }
    }

    /// Deletes old events with nothing pending, with their deliveries and attempts.
    public func pruneWebhookEvents(receivedBefore beforeMicros: Int64) async throws -> Int {
        try await pool.write { db in
            let old = "SELECT event_id FROM webhook_events WHERE received_at_us < ? AND state <> 'pending'"
            try db.execute(sql: "DELETE FROM webhook_attempts WHERE event_id IN (\(old))", arguments: [beforeMicros])
            try db.execute(sql: "DELETE FROM webhook_deliveries WHERE event_id IN (\(old))", arguments: [beforeMicros])
            try db.execute(sql: "DELETE FROM webhook_events WHERE received_at_us < ? AND state <> 'pending'", arguments: [beforeMicros])
            return db.changesCount
        }
    }

    /// Every destination, by name.
    public func webhookDestinations() async throws -> [WebhookDestinationRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_destinations ORDER BY name").map { row in
                let secretID: String? = row["secret_id"]
                let keyID: String? = row["client_key_id"]
                return WebhookDestinationRecord(
                    name: row["name"], url: row["url"], secret: secretID.map { CredentialRef(id: $0, version: row["secret_version"]) },
                    clientCertificatePEM: row["client_certificate_pem"], clientKey: keyID.map { CredentialRef(id: $0, version: row["client_key_version"]) })
            }
        }
    }

    /// Inserts or replaces a destination and its sealed secrets.
    public func saveWebhookDestination(_ destination: WebhookDestinationRecord, secrets: [SealedSecret]) async throws {
        try await change { db in
            try db.execute(
                sql: """
                    INSERT INTO webhook_destinations (name, url, secret_id, secret_version, client_certificate_pem, client_key_id, client_key_version)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET url = excluded.url, secret_id = excluded.secret_id, secret_version = excluded.secret_version,
                        client_certificate_pem = excluded.client_certificate_pem, client_key_id = excluded.client_key_id,
                        client_key_version = excluded.client_key_version
                    """,
                arguments: [
                    destination.name, destination.url, destination.secret?.id, destination.secret?.version, destination.clientCertificatePEM,
                    destination.clientKey?.id, destination.clientKey?.version,
                ])
            try SQLiteStore.upsert(secrets, db)
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Deletes a destination and its secrets; its pending deliveries die with it (replayable once it is back).
    public func deleteWebhookDestination(name: String) async throws -> Bool {
        try await change { db in
            try db.execute(sql: "DELETE FROM webhook_destinations WHERE name = ?", arguments: [name])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "DELETE FROM secrets WHERE owner = ?", arguments: [SecretOwner.webhookDestination(name)])
            let events = try String.fetchAll(db, sql: "SELECT event_id FROM webhook_deliveries WHERE destination = ? AND state = 'pending'", arguments: [name])
            try db.execute(
                sql: "UPDATE webhook_deliveries SET state = 'dead', last_error = 'destination removed', lease_owner = NULL, lease_until_us = NULL WHERE destination = ? AND state = 'pending'",
                arguments: [name])
            for event in events { try SQLiteStore.refreshEventState(db, eventID: event) }
            try SQLiteStore.bumpGeneration(db)
            return true
        }
    }

    /// Deletes one sealed secret.
    public func deleteSealedSecret(owner: String, credentialID: String) async throws -> Bool {
        try await change { db in
            try db.execute(sql: "DELETE FROM secrets WHERE owner = ? AND credential_id = ?", arguments: [owner, credentialID])
            guard db.changesCount > 0 else { return false }
            try SQLiteStore.bumpGeneration(db)
            return true
        }
    }

    /// Sets an event's state from its deliveries (events that are unroutable or unrouted keep theirs).
    static func refreshEventState(_ db: Database, eventID: String) throws {
        try db.execute(
            sql: """
                UPDATE webhook_events SET state = CASE
                    WHEN EXISTS (SELECT 1 FROM webhook_deliveries WHERE event_id = ?1 AND state = 'pending') THEN 'pending'
                    WHEN EXISTS (SELECT 1 FROM webhook_deliveries WHERE event_id = ?1 AND state = 'dead') THEN 'dead'
                    ELSE 'delivered' END
                WHERE event_id = ?1 AND state IN ('pending', 'dead', 'delivered')
                """, arguments: [eventID])
    }

    static let eventInsert = """
        INSERT INTO webhook_events (event_id, partner_id, signing_key_id, event_type, account, merchant_id, received_at_us, state, body)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    static func eventArguments(_ event: WebhookEventRecord) -> StatementArguments {
        [
            event.eventID, event.partnerID, event.signingKeyID, event.eventType, event.account, event.merchantID, event.receivedAtMicros,
            event.state.rawValue, Data(event.body),
        ]
    }

    static func webhookAttempt(_ row: Row) -> WebhookAttemptRecord {
        WebhookAttemptRecord(
            destination: row["destination"], attempt: row["attempt"], timeMicros: row["time_us"], status: row["status"], error: row["error"],
            nodeID: row["node_id"])
    }

    static func webhookEvent(_ row: Row) -> WebhookEventRecord {
        let body: Data = row["body"]
        return WebhookEventRecord(
            eventID: row["event_id"], partnerID: row["partner_id"], signingKeyID: row["signing_key_id"], eventType: row["event_type"],
            account: row["account"], merchantID: row["merchant_id"], receivedAtMicros: row["received_at_us"],
            state: WebhookEventState(rawValue: row["state"]) ?? .pending, body: Array(body))
    }

    static func webhookDelivery(_ row: Row) -> WebhookDeliveryRecord {
        WebhookDeliveryRecord(
            eventID: row["event_id"], destination: row["destination"], state: WebhookDeliveryState(rawValue: row["state"]) ?? .pending,
            attempts: row["attempts"], nextAttemptMicros: row["next_attempt_us"], lastStatus: row["last_status"], lastError: row["last_error"])
    }

    static func claimed(_ row: Row) -> ClaimedWebhookDelivery {
        let body: Data = row["body"]
        let event = WebhookEventRecord(
            eventID: row["event_id"], partnerID: row["partner_id"], signingKeyID: row["signing_key_id"], eventType: row["event_type"],
            account: row["account"], merchantID: row["merchant_id"], receivedAtMicros: row["received_at_us"],
            state: WebhookEventState(rawValue: row["event_state"]) ?? .pending, body: Array(body))
        return ClaimedWebhookDelivery(delivery: webhookDelivery(row), event: event)
    }
}
