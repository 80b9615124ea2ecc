/// What the gateway reads of Klarna's webhook envelope (`{"metadata": {…}, "payload": {…}}`); the body itself is
/// stored and delivered unchanged, so nothing else of it needs a type.
public struct KlarnaWebhookEnvelope: Sendable, Equatable {
    /// `metadata.event_id`: Klarna's id of the event, the same on every retry; the de-duplication key.
    public var eventID: String
    /// `metadata.event_type` (`payment.request.state-change.completed`).
    public var eventType: String
    /// `metadata.subject_account_id`: the merchant's account KRN.
    public var subjectAccountID: String
    /// `metadata.event_version`, when present.
    public var eventVersion: String?
    /// `metadata.occurred_at`, when present.
    public var occurredAt: String?

    /// Longest id or type accepted: these become keys and labels, so a hostile sender cannot make them huge.
    public static let maximumFieldLength = 512

    /// Why a body is not Klarna's envelope.
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// Not a JSON text.
        case notJSON(String)
        /// A required metadata field is missing, empty, too long or not a string.
        case missing(String)

        /// The reason, safe to show the sender (it names fields, never values).
        public var description: String {
            switch self {
            case .notJSON(let reason): "the body is not JSON (\(reason))"
            case .missing(let field): "the body is not Klarna's webhook envelope: \(field) is missing or not a string"
            }
        }
    }

    /// Makes an envelope.
    public init(eventID: String, eventType: String, subjectAccountID: String, eventVersion: String? = nil, occurredAt: String? = nil) {
        self.eventID = eventID
        self.eventType = eventType
        self.subjectAccountID = subjectAccountID
        self.eventVersion = eventVersion
        self.occurredAt = occurredAt
    }

    /// Reads the envelope of a delivery's raw body.
    public static func parse(_ body: [UInt8]) throws(Problem) -> KlarnaWebhookEnvelope {
        let json: JSONValue
        do {
            json = try JSONValue.parse(body)
        } catch {
            throw .notJSON(error.description)
        }
        guard let metadata = json["metadata"], case .object = metadata else { throw .missing("metadata") }
        func field(_ name: String) throws(Problem) -> String {
            guard let text = metadata[name]?.stringValue, !text.isEmpty, text.utf8.count <= maximumFieldLength else {
                throw .missing("metadata.\(name)")
            }
            return text
        }
        return KlarnaWebhookEnvelope(
            eventID: try field("event_id"), eventType: try field("event_type"), subjectAccountID: try field("subject_account_id"),
            eventVersion: metadata["event_version"]?.stringValue, occurredAt: metadata["occurred_at"]?.stringValue)
    }
}
