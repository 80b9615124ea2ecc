import GatewayCore

extension AdminAPI.Exchange {
    /// `GET /admin/v1/webhooks/destinations`: every destination as `webhooks destinations list` shows it, its secret
    /// and client key by reference and version, its certificate by fingerprint; never a secret.
    func listWebhookDestinations() async throws -> AdminResponse {
        let store = try serviceRule { try api.service.webhookStore }
        let destinations = try await store.webhookDestinations()
        return AdminResponse(.ok, json: .object([("destinations", .array(destinations.map(AdminJSON.webhookDestination)))]), requestID: requestID)
    }

    /// `GET /admin/v1/webhooks/keys?partner=`: the partners' signing keys as `webhooks keys list` shows them, by id
    /// and the master key version each is sealed under; nothing of a secret.
    func listWebhookKeys() async throws -> AdminResponse {
        let partner = request.query["partner"]
        // Counted as JSON Schema's maxLength counts, in code points.
        if let partner, partner.isEmpty || partner.unicodeScalars.count > 200 { throw GatewayError(.badRequest, "partner is 1 to 200 characters") }
        let keys = try await api.service.listWebhookKeys(partnerID: partner).map(AdminJSON.webhookKey)
        return AdminResponse(.ok, json: .object([("keys", .array(keys))]), requestID: requestID)
    }

    /// `GET /admin/v1/webhooks/events?merchant=&state=&limit=`: the newest events received, each with its deliveries'
    /// state, as `webhooks events list` and `show` read them. The body Klarna sent is left out: it is read with the
    /// CLI, and a list of many has no use for it.
    func listWebhookEvents() async throws -> AdminResponse {
        let limit = try request.query["limit"].map { text in
            guard let value = Int(text), (1...100).contains(value) else { throw GatewayError(.badRequest, "limit is a number from 1 to 100") }
            return value
        } ?? 20
        let state = try request.query["state"].map { text in
            guard let state = WebhookEventState(rawValue: text) else {
                throw GatewayError(.badRequest, "state is one of " + WebhookEventState.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return state
        }
        let merchant = request.query["merchant"]
        // Counted as JSON Schema's maxLength counts, in code points.
        if let merchant, merchant.isEmpty || merchant.unicodeScalars.count > 200 { throw GatewayError(.badRequest, "merchant is 1 to 200 characters") }
        let store = try serviceRule { try api.service.webhookStore }
        var events: [JSONValue] = []
        for event in try await store.webhookEvents(WebhookEventQuery(merchantID: merchant, state: state, limit: limit)) {
            events.append(AdminJSON.webhookEvent(event, deliveries: try await store.webhookDeliveries(eventID: event.eventID)))
        }
        return AdminResponse(.ok, json: .object([("events", .array(events))]), requestID: requestID)
    }
}

extension AdminJSON {
    /// A webhook destination: its URL (which `webhooks destinations add` refuses with credentials in it), its secret and
    /// client key by reference, its client certificate by fingerprint, and its `etag` for a replacement or removal.
    static func webhookDestination(_ record: WebhookDestinationRecord) -> JSONValue {
        .object([
            ("name", .string(record.name)),
            ("url", .string(record.url)),
            ("secret", credential(record.secret)),
            ("client_key", credential(record.clientKey)),
            ("client_certificate_fingerprint", record.clientCertificatePEM.flatMap { try? ClientCertificate(pem: $0) }.map { .string($0.fingerprint) } ?? .null),
            ("etag", .string(destinationETag(record))),
        ])
    }

    /// A destination's entity tag: a hash of every stored field, its secrets by reference and version (a replacement
    /// seals the next version, so it always gives a new tag).
    static func destinationETag(_ record: WebhookDestinationRecord) -> String {
        let fields = [record.name, record.url, record.secret?.description ?? "", record.clientCertificatePEM ?? "", record.clientKey?.description ?? ""]
        return EntityTag.hashing("webhook-destination\u{1E}" + fields.joined(separator: "\u{1F}"))
    }

    /// A signing key by id and the master key version it is sealed under; nothing of its secret.
    static func webhookKey(_ key: WebhookKeySummary) -> JSONValue {
        .object([("partner_id", .string(key.partnerID)), ("key_id", .string(key.keyID)), ("sealed_under", .int(key.sealedUnder))])
    }

    /// A webhook event without its body, with each delivery's state.
    static func webhookEvent(_ event: WebhookEventRecord, deliveries: [WebhookDeliveryRecord]) -> JSONValue {
        .object([
            ("event_id", .string(event.eventID)),
            ("event_type", .string(event.eventType)),
            ("partner_id", .string(event.partnerID)),
            ("signing_key_id", .string(event.signingKeyID)),
            ("account", .string(event.account)),
            ("merchant_id", event.merchantID.map(JSONValue.string) ?? .null),
            ("received", .string(UTCTime.timestamp(micros: event.receivedAtMicros))),
            ("state", .string(event.state.rawValue)),
            ("deliveries", .array(deliveries.map { delivery in
                .object([
                    ("destination", .string(delivery.destination)),
                    ("state", .string(delivery.state.rawValue)),
                    ("attempts", .int(delivery.attempts)),
                    ("next_attempt", delivery.state == .pending ? .string(UTCTime.timestamp(micros: delivery.nextAttemptMicros)) : .null),
                    ("last_status", delivery.lastStatus.map { .int($0) } ?? .null),
                    ("last_error", delivery.lastError.map(JSONValue.string) ?? .null),
                ])
            })),
        ])
    }
}
