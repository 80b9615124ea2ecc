import Crypto
import Foundation
import GatewayCore

extension AdminAPI.Exchange {
    /// `GET /admin/v1/webhooks/events/{id}`: one event as `webhooks events show` prints it, its deliveries and every
    /// attempt, but its body only by size and SHA-256: the body is Klarna's payload about a customer's payment,
    /// which the console and its screenshots have no need to hold (docs/admin-api.md, "Webhooks").
    func webhookEvent(_ id: String) async throws -> AdminResponse {
        let store = try serviceRule { try api.service.webhookStore }
        guard let event = try await store.webhookEvent(id: id) else { throw GatewayError(.notFound, "no webhook event with id '\(id)'") }
        return AdminResponse(.ok, json: try await eventDetail(event), requestID: requestID)
    }

    /// `POST /admin/v1/webhooks/events/{id}/replay` (operator), optionally `{"destination":"NAME"}`: as `webhooks
    /// replay EVENT_ID`, every delivery of the event (delivered and dead ones too), or the one to that destination, is
    /// due again now; the delivery workers of every instance pick it up from the store. No `If-Match`: a replay
    /// replaces nothing, and repeating it only delivers once more, which is what it asks for.
    func replayWebhookEvent(_ id: String) async throws -> AdminResponse {
        var destination: String?
        if !request.body.isEmpty {
            let body = try AdminRequestBody(request.body, allowed: ["destination"], shape: #"{"destination": "NAME"}"#)
            destination = try body.string("destination", nullable: true)
        }
        let store = try serviceRule { try api.service.webhookStore }
        guard let event = try await store.webhookEvent(id: id) else { throw GatewayError(.notFound, "no webhook event with id '\(id)'") }
        if let destination {
            let deliveries = try await store.webhookDeliveries(eventID: id)
            guard deliveries.contains(where: { $0.destination == destination }) else {
                throw GatewayError(.notFound, "webhook event '\(id)' has no delivery to destination '\(destination)'")
            }
        }
        // The merchant the event was routed to names the records, as a merchant's own change would.
        if let merchantID = event.merchantID { merchant = try await api.service.store.merchant(id: merchantID) }
        try await api.recordIntent(self, merchant: merchant)
        let replayed = try await serviceRule { try await api.service.replayWebhookDeliveries(eventID: id, destination: destination) }
        await api.recordOutcome(self, merchant: merchant, status: 200, inSnapshot: false)
        let now = try await store.webhookEvent(id: id) ?? event
        return AdminResponse(.ok, json: .object([("replayed", .int(replayed)), ("event", try await eventDetail(now))]), requestID: requestID)
    }

    /// An event with its deliveries, its attempts oldest first, and its body's size and SHA-256 only.
    private func eventDetail(_ event: WebhookEventRecord) async throws -> JSONValue {
        let store = try serviceRule { try api.service.webhookStore }
        let listed = AdminJSON.webhookEvent(event, deliveries: try await store.webhookDeliveries(eventID: event.eventID))
        let attempts = try await store.webhookAttempts(eventID: event.eventID).map { attempt in
            JSONValue.object([
                ("destination", .string(attempt.destination)),
                ("attempt", .int(attempt.attempt)),
                ("time", .string(UTCTime.timestamp(micros: attempt.timeMicros))),
                ("status", attempt.status.map { .int($0) } ?? .null),
                ("error", attempt.error.map(JSONValue.string) ?? .null),
                ("node_id", .string(attempt.nodeID)),
            ])
        }
        return .object(
            (listed.objectValue ?? []) + [
                ("body_bytes", .int(event.body.count)),
                ("body_sha256", .string(Hex.encode(SHA256.hash(data: event.body)))),
                ("attempts", .array(attempts)),
            ])
    }

    /// A path segment percent-decoded: Klarna's event and signing key ids are not bound to the id rules.
    static func decoded(_ segment: String) -> String { segment.removingPercentEncoding ?? segment }
}
