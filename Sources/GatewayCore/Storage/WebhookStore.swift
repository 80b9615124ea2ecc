/// What the webhook path persists, in the gateway's store (SQLite or PostgreSQL): events, their deliveries and
/// attempts, destinations, and the removal of signing keys.
///
/// Event and delivery writes do not bump the store's generation: they are not configuration, and a reload per
/// event would be waste. Destination and key changes do, so running gateways pick them up.
public protocol WebhookStore: Sendable {
    /// Stores new events with one pending delivery per destination, all in one transaction (group commit); returns,
    /// per event, true when it was new and false when its id was already stored (then nothing of it is written).
    func saveWebhookEvents(_ events: [NewWebhookEvent]) async throws -> [Bool]
    /// Events matching `query`, newest first, bodies included.
    func webhookEvents(_ query: WebhookEventQuery) async throws -> [WebhookEventRecord]
    /// One event.
    func webhookEvent(id: String) async throws -> WebhookEventRecord?
    /// An event's deliveries.
    func webhookDeliveries(eventID: String) async throws -> [WebhookDeliveryRecord]
    /// An event's attempts, oldest first.
    func webhookAttempts(eventID: String) async throws -> [WebhookAttemptRecord]

    /// Claims up to `limit` pending deliveries to `destination` due at `nowMicros` whose lease is free or expired,
    /// leasing them to `owner` until `nowMicros + leaseMicros`; on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so
    /// instances claiming at once never take the same delivery. One destination at a time, so the worker claims no
    /// more than that destination's concurrency limit leaves room for.
    func claimWebhookDeliveries(owner: String, destination: String, nowMicros: Int64, leaseMicros: Int64, limit: Int) async throws
        -> [ClaimedWebhookDelivery]
    /// Frees every lease `owner` holds: a restarted instance takes its own claims back at once.
    func releaseWebhookLeases(owner: String) async throws
    /// Records attempts' outcomes, frees their leases and updates their events' states, all in one transaction (the
    /// worker's group commit).
    func completeWebhookDeliveries(_ outcomes: [WebhookDeliveryOutcome]) async throws
    /// Makes deliveries pending again, due now: of one event (any state but delivered, or all with `includeDelivered`),
    /// or every dead one (optionally of one destination). Returns how many.
    func replayWebhookDeliveries(eventID: String?, destination: String?, includeDelivered: Bool, nowMicros: Int64) async throws -> Int
    /// The oldest due time among pending deliveries, per destination (for the lag metric).
    func oldestPendingWebhookDeliveries() async throws -> [String: Int64]
    /// Deletes events received before `beforeMicros` that have nothing pending; returns how many.
    func pruneWebhookEvents(receivedBefore beforeMicros: Int64) async throws -> Int

    /// Every destination.
    func webhookDestinations() async throws -> [WebhookDestinationRecord]
    /// Inserts or replaces a destination with its sealed secrets, bumping the generation.
    func saveWebhookDestination(_ destination: WebhookDestinationRecord, secrets: [SealedSecret]) async throws
    /// Deletes a destination and its sealed secrets; its pending deliveries become dead. False when it did not exist.
    func deleteWebhookDestination(name: String) async throws -> Bool
    /// Deletes one sealed secret (a signing key), bumping the generation; false when it did not exist.
    func deleteSealedSecret(owner: String, credentialID: String) async throws -> Bool

    /// Up to `limit` events whose ids sort after `afterEventID` in byte order (from the first when nil), each with
    /// its deliveries and attempts: `store copy` reads and verifies a store in pages of these, in the same order on
    /// both stores.
    func webhookEventCopies(after afterEventID: String?, limit: Int) async throws -> [WebhookEventCopy]
    /// Writes events as copied (states, attempt counts, next times, attempts), every lease free, in one
    /// transaction; an id already stored fails the whole batch (a copy goes into an empty store).
    func insertWebhookEventCopies(_ copies: [WebhookEventCopy]) async throws
}
