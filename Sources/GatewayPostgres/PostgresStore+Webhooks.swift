import GatewayCore
import NIOCore
import PostgresNIO

/// Webhook events and deliveries in PostgreSQL, shared by every instance: any instance receives, and deliveries are
/// claimed with a lease (`FOR UPDATE SKIP LOCKED`), so in steady state each is sent by one instance, and a killed
/// instance's claims are taken over once their lease has run out. Commits use the server's `synchronous_commit`
/// (on by default), so an answered event survives a crash of the gateway and of the server.
extension PostgresStore: WebhookStore {
    static let eventColumns = "event_id, partner_id, signing_key_id, event_type, account, merchant_id, received_at_us, state, body"
    static let deliveryColumns = "event_id, destination, state, attempts, next_attempt_us, last_status, last_error"

    /// Stores the new events (one statement per event, one transaction for all of them).
    public func saveWebhookEvents(_ events: [NewWebhookEvent]) async throws -> [Bool] {
        try await write { connection in
            var stored: [Bool] = []
            stored.reserveCapacity(events.count)
            for new in events {
                let event = new.event
                let isNew = try await Self.insertEvent(event, ifNew: true, connection, logger)
                stored.append(isNew)
                guard isNew, !new.destinations.isEmpty else { continue }
                try await connection.query(
                    """
                    INSERT INTO webhook_deliveries (event_id, destination, state, attempts, next_attempt_us)
                    SELECT \(event.eventID), d, 'pending', 0, \(event.receivedAtMicros) FROM unnest(\(new.destinations)::text[]) AS d
                    """, logger: logger)
            }
            return stored
        }
    }

    /// Events matching `query`, newest first.
    public func webhookEvents(_ query: WebhookEventQuery) async throws -> [WebhookEventRecord] {
        try await read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.eventColumns) FROM webhook_events
                WHERE (\(query.merchantID)::text IS NULL OR merchant_id = \(query.merchantID))
                    AND (\(query.state?.rawValue)::text IS NULL OR state = \(query.state?.rawValue))
                    AND (\(query.sinceMicros)::int8 IS NULL OR received_at_us >= \(query.sinceMicros))
                ORDER BY received_at_us DESC, event_id LIMIT \(query.limit)
                """, logger: logger)
            return try await Self.events(rows)
        }
    }

    /// One event.
    public func webhookEvent(id: String) async throws -> WebhookEventRecord? {
        try await read { connection in
            let rows = try await connection.query("SELECT \(unescaped: Self.eventColumns) FROM webhook_events WHERE event_id = \(id)", logger: logger)
            return try await Self.events(rows).first
        }
    }

    /// An event's deliveries.
    public func webhookDeliveries(eventID: String) async throws -> [WebhookDeliveryRecord] {
        try await read { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries WHERE event_id = \(eventID) ORDER BY destination COLLATE \"C\"",
                logger: logger)
            var deliveries: [WebhookDeliveryRecord] = []
            for try await row in rows.decode((String, String, String, Int, Int64, Int?, String?).self) { deliveries.append(Self.delivery(row)) }
            return deliveries
        }
    }

    /// An event's attempts, oldest first.
    public func webhookAttempts(eventID: String) async throws -> [WebhookAttemptRecord] {
        try await read { connection in
            let rows = try await connection.query(
                """
                SELECT destination, attempt, time_us, status, error, node_id FROM webhook_attempts WHERE event_id = \(eventID)
                ORDER BY time_us, destination COLLATE "C"
                """, logger: logger)
            var attempts: [WebhookAttemptRecord] = []
            for try await (destination, attempt, time, status, error, node) in rows.decode((String, Int, Int64, Int?, String?, String).self) {
                attempts.append(WebhookAttemptRecord(destination: destination, attempt: attempt, timeMicros: time, status: status, error: error, nodeID: node))
            }
            return attempts
        }
    }

    /// Claims due deliveries: rows another instance is claiming at the same moment are skipped, not waited for.
    public func claimWebhookDeliveries(
        owner: String, destination: String, nowMicros: Int64, leaseMicros: Int64, limit: Int
    ) async throws -> [ClaimedWebhookDelivery] {
        try await write { connection in
            let rows = try await connection.query(
                """
                WITH due AS (
                    SELECT event_id, destination FROM webhook_deliveries
                    WHERE destination = \(destination) AND state = 'pending' AND next_attempt_us <= \(nowMicros)
                        AND (lease_until_us IS NULL OR lease_until_us < \(nowMicros))
                    ORDER BY next_attempt_us LIMIT \(limit) FOR UPDATE SKIP LOCKED
                ), claimed AS (
                    UPDATE webhook_deliveries d SET lease_owner = \(owner), lease_until_us = \(nowMicros + leaseMicros)
                    FROM due WHERE d.event_id = due.event_id AND d.destination = due.destination
                    RETURNING d.event_id, d.destination, d.state, d.attempts, d.next_attempt_us, d.last_status, d.last_error
                )
                SELECT c.event_id, c.destination, c.state, c.attempts, c.next_attempt_us, c.last_status, c.last_error,
                    e.partner_id, e.signing_key_id, e.event_type, e.account, e.merchant_id, e.received_at_us, e.state, e.body
                FROM claimed c JOIN webhook_events e ON e.event_id = c.event_id ORDER BY c.next_attempt_us
                """, logger: logger)
            var claims: [ClaimedWebhookDelivery] = []
            for try await row in rows {
                let columns = try row.decode((String, String, String, Int, Int64, Int?, String?, String, String, String, String, String?, Int64, String, ByteBuffer).self)
                let event = WebhookEventRecord(
                    eventID: columns.0, partnerID: columns.7, signingKeyID: columns.8, eventType: columns.9, account: columns.10, merchantID: columns.11,
                    receivedAtMicros: columns.12, state: WebhookEventState(rawValue: columns.13) ?? .pending, body: Array(columns.14.readableBytesView))
                let delivery = Self.delivery((columns.0, columns.1, columns.2, columns.3, columns.4, columns.5, columns.6))
                claims.append(ClaimedWebhookDelivery(delivery: delivery, event: event))
            }
            return claims
        }
    }

    /// Frees every lease `owner` holds.
    public func releaseWebhookLeases(owner: String) async throws {
        _ = try await write { connection in
            try await connection.query(
                "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until_us = NULL WHERE lease_owner = \(owner)", logger: logger)
        }
    }

    /// Records attempts and their verdicts in one transaction (one statement each for the attempts and the
    /// deliveries); a delivery already settled by another instance is left as it is.
    public func completeWebhookDeliveries(_ outcomes: [WebhookDeliveryOutcome]) async throws {
        guard !outcomes.isEmpty else { return }
        _ = try await write { connection in
            try await Self.insertAttempts(
                outcomes.map { (eventID: $0.eventID, WebhookAttemptRecord(
                    destination: $0.destination, attempt: $0.attempt, timeMicros: $0.timeMicros, status: $0.status, error: $0.error, nodeID: $0.nodeID)) },
                connection, logger)
            try await connection.query(
                """
                UPDATE webhook_deliveries w SET state = o.st, attempts = o.a, next_attempt_us = o.nx,
                    last_status = CASE WHEN o.has_status THEN o.s END, last_error = NULLIF(o.err, ''), lease_owner = NULL, lease_until_us = NULL
                FROM unnest(\(outcomes.map(\.eventID))::text[], \(outcomes.map(\.destination))::text[], \(outcomes.map(\.state.rawValue))::text[],
                    \(outcomes.map(\.attempt))::int8[], \(outcomes.map(\.nextAttemptMicros))::int8[], \(outcomes.map { $0.status != nil })::bool[],
                    \(outcomes.map { $0.status ?? 0 })::int8[], \(outcomes.map { $0.error ?? "" })::text[])
                    AS o(e, d, st, a, nx, has_status, s, err)
                WHERE w.event_id = o.e AND w.destination = o.d AND w.state = 'pending'
                """, logger: logger)
            try await Self.refreshEventStates(connection, logger, eventIDs: Array(Set(outcomes.map(\.eventID))))
        }
    }

    /// Makes deliveries pending again, due now.
    public func replayWebhookDeliveries(eventID: String?, destination: String?, includeDelivered: Bool, nowMicros: Int64) async throws -> Int {
        let states = includeDelivered ? ["dead", "delivered"] : ["dead"]
        return try await write { connection in
            let rows = try await connection.query(
                """
                UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_us = \(nowMicros), lease_owner = NULL, lease_until_us = NULL,
                    last_status = NULL, last_error = NULL
                WHERE state = ANY(\(states)::text[]) AND (\(eventID)::text IS NULL OR event_id = \(eventID))
                    AND (\(destination)::text IS NULL OR destination = \(destination))
                RETURNING event_id
                """, logger: logger)
            var events: [String] = []
            for try await event in rows.decode(String.self) { events.append(event) }
            try await Self.refreshEventStates(connection, logger, eventIDs: Array(Set(events)))
            return events.count
        }
    }

    /// The oldest due time among pending deliveries, per destination.
    public func oldestPendingWebhookDeliveries() async throws -> [String: Int64] {
        try await read { connection in
            let rows = try await connection.query(
                "SELECT destination, MIN(next_attempt_us) FROM webhook_deliveries WHERE state = 'pending' GROUP BY destination", logger: logger)
            var oldest: [String: Int64] = [:]
            for try await (destination, time) in rows.decode((String, Int64).self) { oldest[destination] = time }
            return oldest
        }
    }

    /// Deletes old events with nothing pending (their deliveries go with them through the foreign key).
    public func pruneWebhookEvents(receivedBefore beforeMicros: Int64) async throws -> Int {
        try await write { connection in
            try await connection.query(
                """
                DELETE FROM webhook_attempts WHERE event_id IN
                    (SELECT event_id FROM webhook_events WHERE received_at_us < \(beforeMicros) AND state <> 'pending')
                """, logger: logger)
            let rows = try await connection.query(
                "DELETE FROM webhook_events WHERE received_at_us < \(beforeMicros) AND state <> 'pending' RETURNING 1", logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    /// Every destination.
    public func webhookDestinations() async throws -> [WebhookDestinationRecord] {
        try await read { connection in
            let rows = try await connection.query(
                """
                SELECT name, url, secret_id, secret_version, client_certificate_pem, client_key_id, client_key_version
                FROM webhook_destinations ORDER BY name COLLATE "C"
                """, logger: logger)
            var destinations: [WebhookDestinationRecord] = []
            for try await (name, url, secretID, secretVersion, pem, keyID, keyVersion) in rows.decode((String, String, String?, Int?, String?, String?, Int?).self) {
                destinations.append(WebhookDestinationRecord(
                    name: name, url: url, secret: secretID.flatMap { id in secretVersion.map { CredentialRef(id: id, version: $0) } },
                    clientCertificatePEM: pem, clientKey: keyID.flatMap { id in keyVersion.map { CredentialRef(id: id, version: $0) } }))
            }
            return destinations
        }
    }

    /// Inserts or replaces a destination and its secrets.
    public func saveWebhookDestination(_ destination: WebhookDestinationRecord, secrets: [SealedSecret]) async throws {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            try await connection.query(
                """
                INSERT INTO webhook_destinations (name, url, secret_id, secret_version, client_certificate_pem, client_key_id, client_key_version)
                VALUES (\(destination.name), \(destination.url), \(destination.secret?.id), \(destination.secret?.version),
                    \(destination.clientCertificatePEM), \(destination.clientKey?.id), \(destination.clientKey?.version))
                ON CONFLICT (name) DO UPDATE SET url = excluded.url, secret_id = excluded.secret_id, secret_version = excluded.secret_version,
                    client_certificate_pem = excluded.client_certificate_pem, client_key_id = excluded.client_key_id,
                    client_key_version = excluded.client_key_version
                """, logger: logger)
            try await PostgresStore.upsert(secrets, connection, logger)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Deletes a destination and its secrets; its pending deliveries become dead.
    public func deleteWebhookDestination(name: String) async throws -> Bool {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            var found = false
            for try await _ in try await connection.query("DELETE FROM webhook_destinations WHERE name = \(name) RETURNING 1", logger: logger) { found = true }
            guard found else { return false }
            try await connection.query("DELETE FROM secrets WHERE owner = \(SecretOwner.webhookDestination(name))", logger: logger)
            let rows = try await connection.query(
                """
                UPDATE webhook_deliveries SET state = 'dead', last_error = 'destination removed', lease_owner = NULL, lease_until_us = NULL
                WHERE destination = \(name) AND state = 'pending' RETURNING event_id
                """, logger: logger)
            var events: [String] = []
            for try await event in rows.decode(String.self) { events.append(event) }
            try await Self.refreshEventStates(connection, logger, eventIDs: events)
            try await PostgresStore.bumpGeneration(connection, logger)
            return true
        }
    }

    /// Deletes one sealed secret.
    public func deleteSealedSecret(owner: String, credentialID: String) async throws -> Bool {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            var found = false
            let rows = try await connection.query(
                "DELETE FROM secrets WHERE owner = \(owner) AND credential_id = \(credentialID) RETURNING 1", logger: logger)
            for try await _ in rows { found = true }
            if found { try await PostgresStore.bumpGeneration(connection, logger) }
            return found
        }
    }

    /// Inserts one event; with `ifNew`, a stored id is left alone and false returned, else it fails the transaction.
    static func insertEvent(_ event: WebhookEventRecord, ifNew: Bool, _ connection: PostgresConnection, _ logger: Logger) async throws -> Bool {
        let rows = try await connection.query(
            """
            INSERT INTO webhook_events (event_id, partner_id, signing_key_id, event_type, account, merchant_id, received_at_us, state, body)
            VALUES (\(event.eventID), \(event.partnerID), \(event.signingKeyID), \(event.eventType), \(event.account), \(event.merchantID),
                \(event.receivedAtMicros), \(event.state.rawValue), \(ByteBuffer(bytes: event.body)))
            \(unescaped: ifNew ? "ON CONFLICT (event_id) DO NOTHING" : "") RETURNING 1
            """, logger: logger)
        var inserted = false
        for try await _ in rows { inserted = true }
        return inserted
    }

    /// Inserts attempts in one statement. Arrays cannot hold NULLs through these bindings: a flag says whether each
    /// status is set, and an empty error stands for none.
    static func insertAttempts(_ attempts: [(eventID: String, WebhookAttemptRecord)], _ connection: PostgresConnection, _ logger: Logger) async throws {
        guard !attempts.isEmpty else { return }
        let records = attempts.map { $0.1 }
        try await connection.query(
            """
            INSERT INTO webhook_attempts (event_id, destination, attempt, time_us, status, error, node_id)
            SELECT e, d, a, t, CASE WHEN has_status THEN s END, NULLIF(err, ''), n
            FROM unnest(\(attempts.map { $0.eventID })::text[], \(records.map(\.destination))::text[], \(records.map(\.attempt))::int8[],
                \(records.map(\.timeMicros))::int8[], \(records.map { $0.status != nil })::bool[], \(records.map { $0.status ?? 0 })::int8[],
                \(records.map { $0.error ?? "" })::text[], \(records.map(\.nodeID))::text[])
                AS o(e, d, a, t, has_status, s, err, n)
            """, logger: logger)
    }

    static func refreshEventStates(_ connection: PostgresConnection, _ logger: Logger, eventIDs: [String]) async throws {
        guard !eventIDs.isEmpty else { return }
        try await connection.query(
            """
            UPDATE webhook_events e SET state = CASE
                WHEN EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.event_id AND d.state = 'pending') THEN 'pending'
                WHEN EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.event_id AND d.state = 'dead') THEN 'dead'
                ELSE 'delivered' END
            WHERE e.event_id = ANY(\(eventIDs)::text[]) AND e.state IN ('pending', 'dead', 'delivered')
            """, logger: logger)
    }

    static func events(_ rows: PostgresRowSequence) async throws -> [WebhookEventRecord] {
        var events: [WebhookEventRecord] = []
        for try await (id, partner, key, type, account, merchant, received, state, body)
            in rows.decode((String, String, String, String, String, String?, Int64, String, ByteBuffer).self)
        {
            events.append(WebhookEventRecord(
                eventID: id, partnerID: partner, signingKeyID: key, eventType: type, account: account, merchantID: merchant, receivedAtMicros: received,
                state: WebhookEventState(rawValue: state) ?? .pending, body: Array(body.readableBytesView)))
        }
        return events
    }

    static func delivery(_ row: (String, String, String, Int, Int64, Int?, String?)) -> WebhookDeliveryRecord {
        WebhookDeliveryRecord(
            eventID: row.0, destination: row.1, state: WebhookDeliveryState(rawValue: row.2) ?? .pending, attempts: row.3, nextAttemptMicros: row.4,
            lastStatus: row.5, lastError: row.6)
    }
}
