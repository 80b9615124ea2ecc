import Foundation
import GatewayCore
import GatewayWebhooks
import NIOHTTP1

extension AdminAPI.Exchange {
    /// `POST /admin/v1/webhooks/destinations` (security): a new destination as `webhooks destinations add` makes it,
    /// its secret and client key sealed at once; a name that exists is 409 (it is replaced with PUT under its etag).
    func addWebhookDestination() async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: Self.destinationFields.union(["name"]), shape: Self.destinationShape)
        let name = try body.requiredString("name")
        let input = try Self.destinationInput(body)
        try serviceRule {
            try AdminService.checkDestination(name: name, url: input.url, clientCertificatePEM: input.certificatePEM, clientKeyPEM: input.clientKey)
        }
        let store = try serviceRule { try api.service.webhookStore }
        if try await store.webhookDestinations().contains(where: { $0.name == name }) {
            throw GatewayError(.conflict, "destination '\(name)' already exists; replace it with PUT /admin/v1/webhooks/destinations/\(name) under its etag")
        }
        return try await saveDestination(name, input, status: .created)
    }

    /// `PUT /admin/v1/webhooks/destinations/{name}` (security) under the destination's `If-Match`: replaces it as
    /// `webhooks destinations add` replaces one, whole (a secret or client key not sent is gone), the new secrets
    /// sealed as the next version.
    func replaceWebhookDestination(_ name: String) async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: Self.destinationFields, shape: Self.destinationShape)
        let input = try Self.destinationInput(body)
        let current = try await destination(name)
        _ = try ifMatch(AdminJSON.destinationETag(current), of: "destination", readAt: "/admin/v1/webhooks/destinations")
        try serviceRule {
            try AdminService.checkDestination(name: name, url: input.url, clientCertificatePEM: input.certificatePEM, clientKeyPEM: input.clientKey)
        }
        return try await saveDestination(name, input, status: .ok)
    }

    /// `DELETE /admin/v1/webhooks/destinations/{name}` (security) under its `If-Match`: as `webhooks destinations
    /// remove`, refused with 409 while a route of the gateway's webhook routes names it; its pending deliveries
    /// become dead. The answer is the destination as it was.
    func removeWebhookDestination(_ name: String) async throws -> AdminResponse {
        let current = try await destination(name)
        _ = try ifMatch(AdminJSON.destinationETag(current), of: "destination", readAt: "/admin/v1/webhooks/destinations")
        let routesPath = api.gatewayConfig().flatMap { config in config.policies.webhooks.map(config.resolve) }
        // Checked again by the service; here before the intent, so that a route naming it is a refusal alone.
        try Self.inUse { try AdminService.checkUnrouted(destination: name, routesPath: routesPath) }
        try await api.recordIntent(self, merchant: nil)
        try await Self.inUse { try await api.service.removeWebhookDestination(name: name, routesPath: routesPath) }
        await api.recordOutcome(self, merchant: nil, status: 200)
        return AdminResponse(.ok, json: AdminJSON.webhookDestination(current), requestID: requestID)
    }

    /// `POST /admin/v1/webhooks/keys` (security) `{"partner_id","key_id","secret"}`: as `webhooks keys add`, a signing
    /// key made elsewhere sealed at once; the answer names it by id and master key version, never its secret.
    func addWebhookKey() async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["partner_id", "key_id", "secret"], shape: #"{"partner_id": "acq", "key_id": "KEY-ID", "secret": "SECRET"}"#)
        let partnerID = try body.requiredString("partner_id")
        let keyID = try body.requiredString("key_id", maxLength: 256)
        // Read as a secret at once; a refusal names the field, never its value.
        let secret = Secret(try body.requiredString("secret", maxLength: 4096))
        try serviceRule { try AdminService.checkKeyID(keyID) }
        guard !secret.exposedValue.isEmpty else { throw GatewayError(.badRequest, "secret is empty") }
        let partner = try await webhookPartner(partnerID)
        if try await api.service.listWebhookKeys(partnerID: partnerID).contains(where: { $0.keyID == keyID }) {
            throw GatewayError(.conflict, "partner '\(partnerID)' already has signing key '\(keyID)'; a key id names one secret")
        }
        try await api.recordIntent(self, merchant: nil, partner: (partner.id, partner.environment))
        try await serviceRule { try await api.service.addWebhookKey(partnerID: partnerID, keyID: keyID, secret: secret) }
        await api.recordOutcome(self, merchant: nil, partner: (partner.id, partner.environment), status: 201)
        return AdminResponse(.created, json: try await key(partnerID, keyID), requestID: requestID)
    }

    /// `POST /admin/v1/webhooks/keys/rotate` (security) `{"partner_id"}`: as `webhooks keys rotate`, a new key at
    /// Klarna (with the partner's credentials and the gateway's `upstream.ca_file`), sealed the moment it arrives,
    /// and every webhook of the partner moved to it; older keys stay accepted until removed.
    func rotateWebhookKey() async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: ["partner_id"], shape: #"{"partner_id": "acq"}"#)
        let partnerID = try body.requiredString("partner_id")
        let partner = try await webhookPartner(partnerID)
        let trustRoots = try api.gatewayConfig().flatMap { config in
            try config.upstream.caFile.map { try String(contentsOfFile: config.resolve($0), encoding: .utf8) }
        }
        try await api.recordIntent(self, merchant: nil, partner: (partner.id, partner.environment))
        let rotated: (keyID: String, moved: [String])
        do {
            rotated = try await serviceRule { try await api.service.rotateWebhookKey(partnerID: partnerID, trustRootsPEM: trustRoots) }
        } catch let refusal as GatewayError {
            throw refusal
        } catch let failure as KlarnaNotificationClient.Failure {
            // Klarna's status and error code, never a secret: what an operator needs to act on.
            throw GatewayError(.upstreamUnavailable, "Klarna's notification API refused the rotation: \(failure.description)")
        } catch {
            api.logger.error("webhook signing key rotation failed at Klarna", metadata: ["request_id": "\(requestID)", "error": "\(error)"])
            throw GatewayError(.upstreamUnavailable, "Klarna's notification API could not be reached; the log names the reason under this error_id")
        }
        await api.recordOutcome(self, merchant: nil, partner: (partner.id, partner.environment), status: 200)
        return AdminResponse(
            .ok, json: .object([("key", try await key(partnerID, rotated.keyID)), ("moved", .array(rotated.moved.map(JSONValue.string)))]),
            requestID: requestID)
    }

    /// `DELETE /admin/v1/webhooks/keys/{partner}/{key_id}` (security): as `webhooks keys remove`, deliveries signed
    /// with it are refused from the reload that follows at once. No `If-Match`: a key id never names another secret
    /// (an addition of one that exists is refused), so there is no version to be stale against.
    func removeWebhookKey(partner partnerID: String, keyID: String) async throws -> AdminResponse {
        guard try await api.service.listWebhookKeys(partnerID: partnerID).contains(where: { $0.keyID == keyID }) else {
            throw GatewayError(.notFound, "partner '\(partnerID)' has no signing key '\(keyID)'")
        }
        let removed = try await key(partnerID, keyID)
        let named = try await api.service.store.partner(id: partnerID).map { (id: $0.id, environment: $0.environment) }
        try await api.recordIntent(self, merchant: nil, partner: named)
        do {
            try await api.service.removeWebhookKey(partnerID: partnerID, keyID: keyID)
        } catch is AdminError {
            throw GatewayError(.notFound, "partner '\(partnerID)' has no signing key '\(keyID)'")
        }
        await api.recordOutcome(self, merchant: nil, partner: named, status: 200)
        return AdminResponse(.ok, json: removed, requestID: requestID)
    }

    /// The fields of a destination's body besides its name.
    private static let destinationFields: Set<String> = ["url", "secret", "client_certificate_pem", "client_key_pem"]
    private static let destinationShape =
        #"{"name": "NAME", "url": "https://…", "secret": "whsec_…", "client_certificate_pem": "PEM", "client_key_pem": "PEM"}"#

    /// A destination's body read, its secrets as `Secret`s at once; a refusal names the field, never its value.
    private static func destinationInput(_ body: AdminRequestBody) throws -> (url: String, secret: Secret?, certificatePEM: String?, clientKey: Secret?) {
        let url = try body.requiredString("url", maxLength: 2048)
        let secret = try body.string("secret", maxLength: 4096, nullable: true).map(Secret.init)
        if let secret, secret.exposedValue.isEmpty { throw GatewayError(.badRequest, "secret is empty; leave it out for a destination without one") }
        let certificatePEM = try body.string("client_certificate_pem", maxLength: 32_768, nullable: true)
        let clientKey = try body.string("client_key_pem", maxLength: 16_384, nullable: true).map(Secret.init)
        guard (certificatePEM == nil) == (clientKey == nil) else {
            throw GatewayError(.badRequest, "client_certificate_pem and client_key_pem are sent together")
        }
        return (url, secret, certificatePEM, clientKey)
    }

    /// Intent, the service's write (the CLI's), outcome; answers the destination as stored, with its new `ETag`.
    private func saveDestination(
        _ name: String, _ input: (url: String, secret: Secret?, certificatePEM: String?, clientKey: Secret?), status: HTTPResponseStatus
    ) async throws -> AdminResponse {
        try await api.recordIntent(self, merchant: nil)
        try await serviceRule {
            try await api.service.addWebhookDestination(
                name: name, url: input.url, secret: input.secret, clientCertificatePEM: input.certificatePEM, clientKeyPEM: input.clientKey)
        }
        await api.recordOutcome(self, merchant: nil, status: Int(status.code))
        let saved = try await destination(name)
        return AdminResponse(status, json: AdminJSON.webhookDestination(saved), requestID: requestID, etag: AdminJSON.destinationETag(saved))
    }

    /// The destination `name` as stored; 404 when there is none.
    private func destination(_ name: String) async throws -> WebhookDestinationRecord {
        let store = try serviceRule { try api.service.webhookStore }
        guard let found = try await store.webhookDestinations().first(where: { $0.name == name }) else {
            throw GatewayError(.notFound, "no webhook destination named '\(name)'")
        }
        return found
    }

    /// The partner a signing key change names; 404 when there is none.
    private func webhookPartner(_ id: String) async throws -> PartnerRecord {
        guard let partner = try await api.service.store.partner(id: id) else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        return partner
    }

    /// A signing key as the list shows it.
    private func key(_ partnerID: String, _ keyID: String) async throws -> JSONValue {
        guard let key = try await api.service.listWebhookKeys(partnerID: partnerID).first(where: { $0.keyID == keyID }) else {
            throw GatewayError(.notFound, "partner '\(partnerID)' has no signing key '\(keyID)'")
        }
        return AdminJSON.webhookKey(key)
    }

    /// A route naming the destination (the service's refusal) is 409: it is in use.
    private static func inUse(_ operation: () async throws -> Void) async throws {
        do { try await operation() } catch let error as AdminError { throw GatewayError(.conflict, error.message) }
    }

    private static func inUse(_ operation: () throws -> Void) throws {
        do { try operation() } catch let error as AdminError { throw GatewayError(.conflict, error.message) }
    }
}
