import Foundation
import GatewayCore

/// Webhooks and signing keys (per acquirer), and `simulate`.
extension Simulator {
    static let maximumSigningKeys = 50

    func listSigningKeys(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        let keys = state.withLock { $0.signingKeys.values.filter { $0.acquirer == acquirer }.sorted { $0.createdAt < $1.createdAt }.map(\.json) }
        return SimulatorResponse(status: 200, json: ["signing_keys": .array(keys)])
    }

    func createSigningKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        _ = try call.jsonBody()
        let record = SigningKeyRecord(id: SimulatorID.krn("signing-key").replacingOccurrences(of: "krn:payment:eu1:", with: "krn:notification:eu1:"), acquirer: call.acquirer.id,
            secret: SimulatorID.secret(bytes: 40), createdAt: call.nowMilliseconds)
        let acquirer = call.acquirer.id
        let stored: Bool = state.withLock { state in
            guard state.signingKeys.values.filter({ $0.acquirer == acquirer }).count < Self.maximumSigningKeys else { return false }
            state.signingKeys[record.id] = record
            return true
        }
        guard stored else { throw KlarnaError.forbidden("At most \(Self.maximumSigningKeys) signing keys are allowed") }
        // The secret is shown once, here.
        return SimulatorResponse(status: 201, json: record.json.setting("signing_key", .string(record.secret)))
    }

    private func signingKey(_ call: Call) throws(KlarnaError) -> SigningKeyRecord {
        let id = call.parameter("signing_key_id")
        let acquirer = call.acquirer.id
        guard let key = state.withLock({ $0.signingKeys[id] }), key.acquirer == acquirer else { throw KlarnaError.notFound("Signing key not found") }
        return key
    }

    func readSigningKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        SimulatorResponse(status: 200, json: try signingKey(call).json)
    }

    func deleteSigningKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let key = try signingKey(call)
        let inUse = state.withLock { state in state.webhooks.values.contains { $0.signingKeyID == key.id } }
        guard !inUse else { throw KlarnaError.conflict("The signing key is used by a webhook") }
        state.withLock { _ = $0.signingKeys.removeValue(forKey: key.id) }
        return .noContent
    }

    func listWebhooks(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        let hooks = state.withLock { $0.webhooks.values.filter { $0.acquirer == acquirer }.sorted { $0.createdAt < $1.createdAt }.map(\.json) }
        return SimulatorResponse(status: 200, json: ["webhooks": .array(hooks)])
    }

    private func validateWebhook(_ body: JSONValue, creating: Bool, acquirer: String) throws(KlarnaError) {
        var errors: [KlarnaError.FieldError] = []
        if let url = body["url"] {
            if let text = url.stringValue, text.hasPrefix("http://") || text.hasPrefix("https://") {} else {
                errors.append(.init(parameter: "url", reason: "must be an http(s) URL"))
            }
        } else if creating { errors.append(.init(parameter: "url", reason: "is required")) }
        if let types = body["event_types"] {
            if let list = types.arrayValue, !list.isEmpty, list.allSatisfy({ $0.stringValue != nil }) {} else {
                errors.append(.init(parameter: "event_types", reason: "must be a non-empty list of event types"))
            }
        } else if creating { errors.append(.init(parameter: "event_types", reason: "is required")) }
        if let keyID = body["signing_key_id"] {
            if let id = keyID.stringValue, state.withLock({ $0.signingKeys[id]?.acquirer == acquirer }) {} else {
                errors.append(.init(parameter: "signing_key_id", reason: "must name one of your signing keys"))
            }
        } else if creating { errors.append(.init(parameter: "signing_key_id", reason: "is required")) }
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
    }

    func createWebhook(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        try validateWebhook(body, creating: true, acquirer: call.acquirer.id)
        let record = WebhookRecord(
            id: SimulatorID.krn("webhook").replacingOccurrences(of: "krn:payment:eu1:", with: "krn:notification:eu1:"), acquirer: call.acquirer.id,
            url: body["url"]!.stringValue!, eventTypes: body["event_types"]!.arrayValue!.compactMap(\.stringValue),
            eventVersion: body["event_version"]?.stringValue ?? "v2", signingKeyID: body["signing_key_id"]!.stringValue!,
            status: body["status"]?.stringValue ?? "ENABLED", createdAt: call.nowMilliseconds
        )
        state.withLock { $0.webhooks[record.id] = record }
        return SimulatorResponse(status: 201, json: record.json)
    }

    private func webhook(_ call: Call) throws(KlarnaError) -> WebhookRecord {
        let id = call.parameter("webhook_id")
        let acquirer = call.acquirer.id
        guard let hook = state.withLock({ $0.webhooks[id] }), hook.acquirer == acquirer else { throw KlarnaError.notFound("Webhook not found") }
        return hook
    }

    func readWebhook(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        SimulatorResponse(status: 200, json: try webhook(call).json)
    }

    func updateWebhook(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        var hook = try webhook(call)
        let body = try call.jsonBody()
        try validateWebhook(body, creating: false, acquirer: call.acquirer.id)
        if let url = body["url"]?.stringValue { hook.url = url }
        if let types = body["event_types"]?.arrayValue { hook.eventTypes = types.compactMap(\.stringValue) }
        if let version = body["event_version"]?.stringValue { hook.eventVersion = version }
        if let key = body["signing_key_id"]?.stringValue { hook.signingKeyID = key }
        if let status = body["status"]?.stringValue {
            guard status == "ENABLED" || status == "DISABLED" else { throw KlarnaError.validation("status", "must be ENABLED or DISABLED") }
            hook.status = status
        }
        let updated = hook
        state.withLock { $0.webhooks[updated.id] = updated }
        return SimulatorResponse(status: 200, json: updated.json)
    }

    func deleteWebhook(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let hook = try webhook(call)
        state.withLock { _ = $0.webhooks.removeValue(forKey: hook.id) }
        return .noContent
    }

    /// Sends a sample event of the requested type (default the webhook's first concrete type) to this webhook only.
    func simulateWebhook(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let hook = try webhook(call)
        let body = try call.jsonBody()
        let firstConcrete = hook.eventTypes.first { !$0.contains("*") }
        let type = body["event_type"]?.stringValue ?? firstConcrete ?? "payment.request.state-change.submitted"
        let merchant = directory.merchants.first { $0.value == call.acquirer }?.key
        let event = SimulatorEvent(
            type: type, acquirer: call.acquirer, merchant: merchant,
            payload: ["simulated": true, "payment_request_id": .string(SimulatorID.krn("request")), "state": "SUBMITTED"]
        )
        deliver([event], onlyWebhook: hook.id)
        return SimulatorResponse(status: 202, json: ["webhook_id": .string(hook.id), "event_type": .string(type), "status": "SCHEDULED"])
    }
}
