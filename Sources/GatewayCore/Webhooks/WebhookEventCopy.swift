/// One event with everything stored about it (its deliveries and their attempts), as `store copy` moves it between
/// stores: the delivery state travels whole, so a copy delivers what was pending, keeps what was settled, and
/// still refuses the event id as a duplicate.
public struct WebhookEventCopy: Sendable, Equatable {
    /// The event, body and state included.
    public var event: WebhookEventRecord
    /// Its deliveries, by destination (byte order). Leases are not part of a copy: they name instances of the
    /// source store.
    public var deliveries: [WebhookDeliveryRecord]
    /// Its attempts, oldest first (then by destination and number).
    public var attempts: [WebhookAttemptRecord]

    /// Makes a copy.
    public init(event: WebhookEventRecord, deliveries: [WebhookDeliveryRecord], attempts: [WebhookAttemptRecord]) {
        self.event = event
        self.deliveries = deliveries
        self.attempts = attempts
    }
}
