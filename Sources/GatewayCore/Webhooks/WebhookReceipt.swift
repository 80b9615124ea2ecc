/// The signing keys the webhook listener verifies with, opened from the vault: per partner, by Klarna's key id.
public struct WebhookSigningKeys: Sendable {
    private let keys: [String: [String: Secret]]

    /// No keys: every delivery is refused.
    public static let none = WebhookSigningKeys([:])

    /// Makes the key set from partner id → (key id → secret).
    public init(_ keys: [String: [String: Secret]]) { self.keys = keys }

    /// The secret of `keyID` when it is a key of `partnerID`.
    public func secret(partner partnerID: String, keyID: String) -> Secret? { keys[partnerID]?[keyID] }

    /// How many keys there are in all.
    public var count: Int { keys.values.reduce(0) { $0 + $1.count } }
}

/// Why a delivery to the webhook listener was refused; the raw value is the metric label and the audit detail.
public enum WebhookRefusal: String, Error, Sendable, CaseIterable {
    /// Not HTTP the listener can parse (bad framing, an oversize head): answered, and the connection closed.
    case malformed = "malformed"
    /// Not `POST /klarna/webhooks/{partner_id}`.
    case notFound = "not_found"
    /// Over the 1 MB body limit.
    case tooLarge = "too_large"
    /// `Klarna-Signing-Key-Id` absent, or not a key of that partner.
    case unknownKey = "unknown_key"
    /// `Klarna-Signature` absent.
    case missingSignature = "missing_signature"
    /// `Klarna-Signature` does not match the body.
    case badSignature = "bad_signature"
    /// Signed correctly, but not JSON.
    case notJSON = "not_json"
    /// JSON, but without Klarna's envelope fields.
    case notEnvelope = "not_envelope"
    /// Verified, but the store could not make it durable.
    case notStored = "not_stored"

    /// The refusal as the sender receives it.
    public func error(detail: String? = nil) -> GatewayError {
        switch self {
        case .malformed: GatewayError(.badRequest, detail ?? "The request is malformed HTTP.")
        case .notFound: GatewayError(.notFound, "This listener only receives Klarna webhooks: POST /klarna/webhooks/{partner_id}")
        case .tooLarge: GatewayError(.payloadTooLarge, "The webhook body is larger than \(WebhookReceipt.maximumBodyBytes) bytes")
        // One message for the three: a forger learns nothing about which keys exist.
        case .unknownKey, .missingSignature, .badSignature:
            GatewayError(.unauthenticated, "The webhook signature could not be verified")
        case .notJSON, .notEnvelope: GatewayError(.badRequest, detail ?? "The body is not Klarna's webhook envelope")
        case .notStored: GatewayError(.webhookNotStored, "The webhook could not be stored; retry later")
        }
    }
}

/// The receiving checks, in the order they must run: where it was sent, how large it is, whose key signed it and
/// whether the signature holds, and only then what the body says. Pure: the listener carries it out.
public enum WebhookReceipt {
    /// The path prefix the listener serves; the partner id follows it.
    public static let pathPrefix = "/klarna/webhooks/"
    /// Klarna's own request limit.
    public static let maximumBodyBytes = 1_048_576

    /// The partner a request is addressed to, or `notFound` for anything but `POST /klarna/webhooks/{partner_id}`.
    public static func partner(method: String, target: String) -> Result<String, WebhookRefusal> {
        guard method == "POST", target.hasPrefix(pathPrefix) else { return .failure(.notFound) }
        let partner = target.dropFirst(pathPrefix.count)
        // A partner id as the store allows it: no further segment, query, or odd byte.
        guard MerchantRecord.problem(withID: String(partner), kind: "partner") == nil else { return .failure(.notFound) }
        return .success(String(partner))
    }

    /// A delivery that passed every check.
    public struct Verified: Sendable, Equatable {
        /// The partner it was addressed to.
        public var partnerID: String
        /// The signing key that verified it.
        public var keyID: String
        /// What the envelope says.
        public var envelope: KlarnaWebhookEnvelope
    }

    /// Verifies the signature and then reads the envelope; the body is never parsed before it is authenticated.
    public static func verify(
        partnerID: String, keyID: String?, signature: String?, body: [UInt8], keys: WebhookSigningKeys
    ) -> Result<Verified, Refused> {
        guard let keyID, let secret = keys.secret(partner: partnerID, keyID: keyID) else { return .failure(Refused(.unknownKey)) }
        guard let signature, !signature.isEmpty else { return .failure(Refused(.missingSignature)) }
        guard KlarnaWebhookSignature.verify(body: body, signature: signature, secret: secret) else { return .failure(Refused(.badSignature)) }
        do {
            return .success(Verified(partnerID: partnerID, keyID: keyID, envelope: try KlarnaWebhookEnvelope.parse(body)))
        } catch {
            switch error {
            case .notJSON: return .failure(Refused(.notJSON, detail: error.description))
            case .missing: return .failure(Refused(.notEnvelope, detail: error.description))
            }
        }
    }

    /// A refusal with the detail the sender is told (field names only, never values).
    public struct Refused: Error, Sendable, Equatable {
        /// Which check refused.
        public var reason: WebhookRefusal
        /// What to tell the sender, for 400s.
        public var detail: String?

        /// Makes a refusal.
        public init(_ reason: WebhookRefusal, detail: String? = nil) {
            self.reason = reason
            self.detail = detail
        }

        /// The error answered.
        public var error: GatewayError { reason.error(detail: detail) }
    }
}
