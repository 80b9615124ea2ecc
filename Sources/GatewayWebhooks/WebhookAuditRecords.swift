import Crypto
import GatewayCore

/// The audit trail's records of the webhook path, in the trail's existing columns (docs/webhooks.md maps them):
/// the trail's field list and canonical encoding stay as they are, and `audit verify`, export and prune apply.
/// Klarna's event id goes in `correlation_id`, the event type in `operation_template`, the body only as its hash.
enum WebhookAuditRecords {
    /// `operation_family` of every webhook record.
    static let family = "webhooks"

    private static func operation(_ id: String, template: String) -> Operation {
        Operation(id: id, method: "POST", template: template, scope: .acquirer, family: family, category: family, introducedIn: "gateway", testOnly: false)
    }

    /// A delivery to the listener: accepted (`outcome`, 200) or refused (`refusal`, with the gateway error code).
    static func receipt(
        requestID: String, timeMicros: Int64, clientAddress: String?, partnerID: String?, keyID: String?, envelope: KlarnaWebhookEnvelope?,
        merchantID: String?, body: [UInt8], bodySHA256: String, status: Int, refusal: GatewayError?, path: String
    ) -> CallRecord {
        var record = CallRecord(phase: refusal == nil ? .outcome : .refusal, requestID: requestID, timeMicros: timeMicros, method: "POST", path: path)
        record.clientAddress = clientAddress
        record.facts.partnerID = partnerID
        record.facts.merchantID = merchantID
        record.facts.account = envelope?.subjectAccountID
        record.facts.operation = operation("receiveKlarnaWebhook", template: envelope?.eventType ?? "-")
        record.correlationID = envelope?.eventID
        record.credential = keyID.map { CredentialRef(id: $0, version: 1) }
        record.requestBodySHA256 = bodySHA256
        record.requestBodyBytes = body.count
        record.status = status
        record.gatewayErrorCode = refusal?.code.rawValue
        return record
    }

    /// One attempt to deliver an event to a destination; `upstream_attempts` is the attempt's number, `status` the
    /// receiver's, and `gateway_error_code` says what became of an undelivered one (`WEBHOOK_DELIVERY_RETRY`,
    /// `WEBHOOK_DELIVERY_DEAD`; none when delivered).
    static func delivery(
        claimed: ClaimedWebhookDelivery, attempt: Int, timeMicros: Int64, status: Int?, state: WebhookDeliveryState, latencyMicros: Int64,
        certificateFingerprint: String?
    ) -> CallRecord {
        let event = claimed.event
        var record = CallRecord(
            phase: .outcome, requestID: RequestID.make(), timeMicros: timeMicros, method: "POST", path: "webhook-destination:\(claimed.delivery.destination)")
        record.facts.partnerID = event.partnerID
        record.facts.merchantID = event.merchantID
        record.facts.account = event.account
        record.facts.operation = operation("deliverKlarnaWebhook", template: event.eventType)
        record.correlationID = event.eventID
        record.requestBodySHA256 = Hex.encode(SHA256.hash(data: event.body))
        record.requestBodyBytes = event.body.count
        record.status = status
        record.gatewayErrorCode = state == .pending ? "WEBHOOK_DELIVERY_RETRY" : (state == .dead ? "WEBHOOK_DELIVERY_DEAD" : nil)
        record.upstreamAttempts = attempt
        record.upstreamLatencyMicros = latencyMicros
        record.upstreamCertificateFingerprint = certificateFingerprint
        return record
    }
}
