/// Where an event stands, over all of its deliveries.
public enum WebhookEventState: String, Sendable, Codable, CaseIterable {
    /// At least one delivery is still to be made.
    case pending
    /// Every delivery was answered 2xx.
    case delivered
    /// No delivery is pending and at least one ran out of attempts (or was refused by a removed destination).
    case dead
    /// Its `subject_account_id` names no merchant of the gateway: kept, listed with the dead letters, never dropped.
    case unroutable
    /// Its merchant is known but no route sends this event type anywhere.
    case unrouted
}

/// One accepted Klarna event, as stored: the raw body exactly as signed, and what the gateway made of it.
public struct WebhookEventRecord: Sendable, Equatable {
    /// Klarna's `metadata.event_id`, the primary key.
    public var eventID: String
    /// The partner whose endpoint it was posted to.
    public var partnerID: String
    /// The signing key that verified it.
    public var signingKeyID: String
    /// `metadata.event_type`.
    public var eventType: String
    /// `metadata.subject_account_id` (the merchant's KRN).
    public var account: String
    /// The gateway's merchant for that KRN; nil when unroutable.
    public var merchantID: String?
    /// Microseconds since the Unix epoch when it was stored.
    public var receivedAtMicros: Int64
    /// Where it stands.
    public var state: WebhookEventState
    /// The body, byte for byte.
    public var body: [UInt8]

    /// Makes a record.
    public init(
        eventID: String, partnerID: String, signingKeyID: String, eventType: String, account: String, merchantID: String?,
        receivedAtMicros: Int64, state: WebhookEventState, body: [UInt8]
    ) {
        self.eventID = eventID
        self.partnerID = partnerID
        self.signingKeyID = signingKeyID
        self.eventType = eventType
        self.account = account
        self.merchantID = merchantID
        self.receivedAtMicros = receivedAtMicros
        self.state = state
        self.body = body
    }
}

/// An event to store together with the destinations its routes chose (one delivery each).
public struct NewWebhookEvent: Sendable {
    /// The event.
    public var event: WebhookEventRecord
    /// The destinations, in route order, without repeats.
    public var destinations: [String]

    /// Makes a new event; its state follows from the merchant and the destinations.
    public init(event: WebhookEventRecord, destinations: [String]) {
        var event = event
        event.state = event.merchantID == nil ? .unroutable : (destinations.isEmpty ? .unrouted : .pending)
        self.event = event
        self.destinations = event.merchantID == nil ? [] : destinations
    }
}

/// Where one delivery (one event to one destination) stands.
public enum WebhookDeliveryState: String, Sendable, Codable, CaseIterable {
    /// To be attempted at `nextAttemptMicros`.
    case pending
    /// Answered 2xx.
    case delivered
    /// Out of attempts; `replay` makes it pending again.
    case dead
}

/// One event's delivery to one destination.
public struct WebhookDeliveryRecord: Sendable, Equatable {
    /// The event.
    public var eventID: String
    /// The destination's name.
    public var destination: String
    /// Where it stands.
    public var state: WebhookDeliveryState
    /// Attempts made so far.
    public var attempts: Int
    /// When the next attempt is due (microseconds since the epoch).
    public var nextAttemptMicros: Int64
    /// The last attempt's HTTP status, if it got one.
    public var lastStatus: Int?
    /// The last attempt's failure, when it got no status (never a secret).
    public var lastError: String?

    /// Makes a record.
    public init(
        eventID: String, destination: String, state: WebhookDeliveryState, attempts: Int, nextAttemptMicros: Int64, lastStatus: Int? = nil,
        lastError: String? = nil
    ) {
        self.eventID = eventID
        self.destination = destination
        self.state = state
        self.attempts = attempts
        self.nextAttemptMicros = nextAttemptMicros
        self.lastStatus = lastStatus
        self.lastError = lastError
    }
}

/// One attempt of one delivery, for `webhooks events show`.
public struct WebhookAttemptRecord: Sendable, Equatable {
    /// The destination.
    public var destination: String
    /// 1 for the first attempt.
    public var attempt: Int
    /// When it ended.
    public var timeMicros: Int64
    /// The receiver's status, if any.
    public var status: Int?
    /// Why there was none.
    public var error: String?
    /// The instance that made it.
    public var nodeID: String

    /// Makes a record.
    public init(destination: String, attempt: Int, timeMicros: Int64, status: Int?, error: String?, nodeID: String) {
        self.destination = destination
        self.attempt = attempt
        self.timeMicros = timeMicros
        self.status = status
        self.error = error
        self.nodeID = nodeID
    }
}

/// A delivery claimed by one instance, with what sending it needs.
public struct ClaimedWebhookDelivery: Sendable, Equatable {
    /// The delivery as claimed (attempts made before this one).
    public var delivery: WebhookDeliveryRecord
    /// The event (body included).
    public var event: WebhookEventRecord

    /// Makes a claim.
    public init(delivery: WebhookDeliveryRecord, event: WebhookEventRecord) {
        self.delivery = delivery
        self.event = event
    }
}

/// How an attempt ended, as the store records it.
public struct WebhookDeliveryOutcome: Sendable, Equatable {
    /// The event.
    public var eventID: String
    /// The destination.
    public var destination: String
    /// The instance whose claim this was: an outcome from a claim that was taken over is still recorded.
    public var nodeID: String
    /// The attempt's number (1 for the first).
    public var attempt: Int
    /// Delivered, pending again (with its next time) or dead.
    public var state: WebhookDeliveryState
    /// When to try again, for `pending`.
    public var nextAttemptMicros: Int64
    /// The receiver's status.
    public var status: Int?
    /// The failure when there was no status.
    public var error: String?
    /// When the attempt ended.
    public var timeMicros: Int64

    /// Makes an outcome.
    public init(
        eventID: String, destination: String, nodeID: String, attempt: Int, state: WebhookDeliveryState, nextAttemptMicros: Int64,
        status: Int?, error: String?, timeMicros: Int64
    ) {
        self.eventID = eventID
        self.destination = destination
        self.nodeID = nodeID
        self.attempt = attempt
        self.state = state
        self.nextAttemptMicros = nextAttemptMicros
        self.status = status
        self.error = error
        self.timeMicros = timeMicros
    }
}

/// An internal system events are delivered to.
public struct WebhookDestinationRecord: Sendable, Equatable, Codable {
    /// Its name, used by routes.
    public var name: String
    /// Where deliveries are POSTed (`https://…`; `http://` only to loopback).
    public var url: String
    /// The sealed Standard Webhooks secret, if any.
    public var secret: CredentialRef?
    /// A client certificate chain (PEM) presented to it, if any.
    public var clientCertificatePEM: String?
    /// The sealed private key of that certificate.
    public var clientKey: CredentialRef?

    /// Makes a destination.
    public init(name: String, url: String, secret: CredentialRef?, clientCertificatePEM: String?, clientKey: CredentialRef?) {
        self.name = name
        self.url = url
        self.secret = secret
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKey = clientKey
    }
}

/// What `webhooks events list` filters on.
public struct WebhookEventQuery: Sendable, Equatable {
    /// Only this merchant's events.
    public var merchantID: String?
    /// Only events in this state.
    public var state: WebhookEventState?
    /// Only events received at or after this time (microseconds).
    public var sinceMicros: Int64?
    /// At most this many, newest first.
    public var limit: Int

    /// Makes a query.
    public init(merchantID: String? = nil, state: WebhookEventState? = nil, sinceMicros: Int64? = nil, limit: Int = 100) {
        self.merchantID = merchantID
        self.state = state
        self.sinceMicros = sinceMicros
        self.limit = limit
    }
}

extension SecretOwner {
    /// The owner of a partner's webhook signing keys (`webhook-signing:<partner>`); each key is a credential whose
    /// id is Klarna's key id.
    public static func webhookSigning(_ partnerID: String) -> String { "webhook-signing:\(partnerID)" }
    /// The owner of a destination's secret and client key (`webhook-destination:<name>`).
    public static func webhookDestination(_ name: String) -> String { "webhook-destination:\(name)" }
    /// A destination's Standard Webhooks secret.
    public static func webhookDestinationSecret(_ name: String, version: Int) -> CredentialRef {
        CredentialRef(id: "webhook-destination:\(name):secret", version: version)
    }
    /// A destination's client private key.
    public static func webhookDestinationClientKey(_ name: String, version: Int) -> CredentialRef {
        CredentialRef(id: "webhook-destination:\(name):client-key", version: version)
    }
}
