import Foundation
import GatewayCore
import GatewayPolicy
import GatewayWebhooks

/// A signing key as `webhooks keys list` shows it: never its secret, not even a part of it.
public struct WebhookKeySummary: Sendable, Equatable {
    /// The partner it belongs to.
    public var partnerID: String
    /// Klarna's key id.
    public var keyID: String
    /// The master key version it is sealed under.
    public var sealedUnder: Int
}

/// What `webhooks register` did.
public struct WebhookRegistration: Sendable, Equatable {
    /// The signing key created and sealed.
    public var keyID: String
    /// The webhook created at Klarna.
    public var webhookID: String
}

extension AdminService {
    /// The store's webhook tables.
    public var webhookStore: any WebhookStore {
        get throws {
            guard let store = store as? any WebhookStore else { throw AdminError("this store cannot hold webhooks") }
            return store
        }
    }

    /// Every signing key (of one partner, when given), sealed-key version only.
    public func listWebhookKeys(partnerID: String? = nil) async throws -> [WebhookKeySummary] {
        let prefix = SecretOwner.webhookSigning("")
        return try await store.sealedSecrets().compactMap { secret in
            guard secret.owner.hasPrefix(prefix) else { return nil }
            let partner = String(secret.owner.dropFirst(prefix.count))
            guard partnerID == nil || partnerID == partner else { return nil }
            return WebhookKeySummary(partnerID: partner, keyID: secret.credential.id, sealedUnder: secret.keyVersion)
        }.sorted { ($0.partnerID, $0.keyID) < ($1.partnerID, $1.keyID) }
    }

    /// Seals a signing key created elsewhere (Klarna's portal, another gateway) for `partnerID`.
    public func addWebhookKey(partnerID: String, keyID: String, secret: Secret) async throws {
        try await requirePartner(partnerID)
        try Self.checkKeyID(keyID)
        guard !secret.exposedValue.isEmpty else { throw AdminError("the signing key secret is empty") }
        if try await listWebhookKeys(partnerID: partnerID).contains(where: { $0.keyID == keyID }) {
            throw AdminError("partner '\(partnerID)' already has signing key \(keyID)")
        }
        try await changing("webhooks.keys.add", "\(partnerID) \(keyID)") { try await sealWebhookKey(partnerID: partnerID, keyID: keyID, secret: secret) }
    }

    /// Removes a signing key: deliveries signed with it are refused from the next reload on.
    public func removeWebhookKey(partnerID: String, keyID: String) async throws {
        let webhooks = try webhookStore
        guard try await changing("webhooks.keys.remove", "\(partnerID) \(keyID)", {
            try await webhooks.deleteSealedSecret(owner: SecretOwner.webhookSigning(partnerID), credentialID: keyID)
        }) else {
            throw AdminError("partner '\(partnerID)' has no signing key \(keyID)")
        }
    }

    /// `webhooks register`: a new signing key at Klarna, sealed the moment it arrives, then a webhook to `url`
    /// signed with it. The key is stored before the webhook is created, so an event Klarna sends at once verifies.
    public func registerWebhook(
        partnerID: String, url: String, eventTypes: [String], eventVersion: String?, trustRootsPEM: String?
    ) async throws -> WebhookRegistration {
        guard url.hasPrefix("https://") else { throw AdminError("the webhook URL must be https:// (Klarna posts to ports 443 or 8443)") }
        guard !eventTypes.isEmpty, eventTypes.allSatisfy({ WebhookRoute.isValid(pattern: $0) }) else {
            throw AdminError("--events must be event types, 'prefix.*' or '*'")
        }
        let client = KlarnaNotificationClient(partner: try await openPartner(partnerID), trustRootsPEM: trustRootsPEM)
        let key = try await client.createSigningKey()
        try await changing("webhooks.keys.create", "\(partnerID) \(key.id)") { try await sealWebhookKey(partnerID: partnerID, keyID: key.id, secret: key.secret) }
        let webhookID: String
        do {
            webhookID = try await client.createWebhook(url: url, eventTypes: eventTypes, eventVersion: eventVersion, signingKeyID: key.id)
        } catch {
            throw AdminError("signing key \(key.id) was created and sealed, but the webhook was not: \(error)")
        }
        try await logChange("webhooks.register", "\(partnerID) \(webhookID) \(url) \(eventTypes.joined(separator: ","))")
        return WebhookRegistration(keyID: key.id, webhookID: webhookID)
    }

    /// `webhooks keys rotate`: a new key at Klarna, sealed, and every webhook of the partner moved to it; the old keys
    /// stay accepted (deliveries already signed with them are still retried) until `keys remove`.
    public func rotateWebhookKey(partnerID: String, trustRootsPEM: String?) async throws -> (keyID: String, moved: [String]) {
        let client = KlarnaNotificationClient(partner: try await openPartner(partnerID), trustRootsPEM: trustRootsPEM)
        let key = try await client.createSigningKey()
        try await changing("webhooks.keys.create", "\(partnerID) \(key.id)") { try await sealWebhookKey(partnerID: partnerID, keyID: key.id, secret: key.secret) }
        var moved: [String] = []
        for hook in try await client.listWebhooks() where hook.signingKeyID != key.id {
            try await client.moveWebhook(id: hook.id, to: key.id)
            moved.append(hook.id)
        }
        try await logChange("webhooks.keys.rotate", "\(partnerID) \(key.id) moved \(moved.joined(separator: ","))")
        return (key.id, moved)
    }

    /// Adds or replaces a destination; secrets are sealed, the client key must match the certificate.
    public func addWebhookDestination(name: String, url: String, secret: Secret?, clientCertificatePEM: String?, clientKeyPEM: Secret?) async throws {
        try Self.checkDestination(name: name, url: url, clientCertificatePEM: clientCertificatePEM, clientKeyPEM: clientKeyPEM)
        let existing = try await webhookStore.webhookDestinations().first { $0.name == name }
        let version = max(existing?.secret?.version ?? 0, existing?.clientKey?.version ?? 0) + 1
        let owner = SecretOwner.webhookDestination(name)
        let record = WebhookDestinationRecord(
            name: name, url: url, secret: secret.map { _ in SecretOwner.webhookDestinationSecret(name, version: version) },
            clientCertificatePEM: clientCertificatePEM, clientKey: clientKeyPEM.map { _ in SecretOwner.webhookDestinationClientKey(name, version: version) })
        var sealed: [SealedSecret] = []
        if let secret, let ref = record.secret { sealed.append(try sealer.seal(secret, owner: owner, credential: ref)) }
        if let key = clientKeyPEM, let ref = record.clientKey { sealed.append(try sealer.seal(key, owner: owner, credential: ref)) }
        let webhooks = try webhookStore
        try await changing("webhooks.destinations.add", "\(name) \(url)") { try await webhooks.saveWebhookDestination(record, secrets: sealed) }
    }

    /// Removes a destination; refused while a route in `routesPath` still names it.
    public func removeWebhookDestination(name: String, routesPath: String?) async throws {
        try Self.checkUnrouted(destination: name, routesPath: routesPath)
        let webhooks = try webhookStore
        guard try await changing("webhooks.destinations.remove", name, { try await webhooks.deleteWebhookDestination(name: name) }) else {
            throw AdminError.notFound("destination", name)
        }
    }

    /// `webhooks replay`: deliveries of one event (delivered ones too) or every dead delivery, due again now; how many.
    public func replayWebhookDeliveries(eventID: String?, destination: String?) async throws -> Int {
        let webhooks = try webhookStore
        let detail = "\(eventID ?? "every dead delivery")\(destination.map { " to \($0)" } ?? "")"
        return try await changing("webhooks.replay", detail) {
            try await webhooks.replayWebhookDeliveries(
                eventID: eventID, destination: destination, includeDelivered: eventID != nil, nowMicros: UTCTime.nowMicros())
        }
    }

    /// Refuses a destination's removal while a route of `routesPath` names it (the routes would no longer load).
    static func checkUnrouted(destination name: String, routesPath: String?) throws {
        guard let routesPath, FileManager.default.fileExists(atPath: routesPath) else { return }
        let routes = try PolicyLoader.loadWebhookRoutes(path: routesPath, knownDestinations: nil)
        if let route = routes.routes.first(where: { $0.destinations.contains(name) }) {
            throw AdminError("the route on line \(route.line) of \(routesPath) names '\(name)'; change the routes first")
        }
    }

    private func sealWebhookKey(partnerID: String, keyID: String, secret: Secret) async throws {
        let sealed = try sealer.seal(secret, owner: SecretOwner.webhookSigning(partnerID), credential: CredentialRef(id: keyID, version: 1))
        try await store.saveSecrets([sealed])
    }

    private func requirePartner(_ partnerID: String) async throws {
        guard try await store.partner(id: partnerID) != nil else { throw AdminError.notFound("partner", partnerID) }
    }

    /// The partner with its key and client certificate opened, as the data plane would send with them.
    private func openPartner(_ partnerID: String) async throws -> PartnerState {
        try await requirePartner(partnerID)
        guard let partner = try await loadCredentials().partners.first(where: { $0.record.id == partnerID }) else {
            throw AdminError.notFound("partner", partnerID)
        }
        return partner
    }

    static func checkKeyID(_ keyID: String) throws {
        guard !keyID.isEmpty, keyID.utf8.count <= 256, keyID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw AdminError("a signing key id is 1 to 256 visible ASCII characters")
        }
    }

    /// Every rule a destination's name, URL and client certificate follow, checked before anything is written (the
    /// admin API checks them before it records its intent).
    static func checkDestination(name: String, url: String, clientCertificatePEM: String?, clientKeyPEM: Secret?) throws {
        if let problem = MerchantRecord.problem(withID: name, kind: "destination") { throw AdminError(problem) }
        try checkDestinationURL(url)
        guard (clientCertificatePEM == nil) == (clientKeyPEM == nil) else { throw AdminError("--client-cert and --client-key go together") }
        if clientCertificatePEM != nil, !url.hasPrefix("https://") { throw AdminError("a client certificate needs an https:// destination") }
        if let pem = clientCertificatePEM, let key = clientKeyPEM {
            let certificate = try ClientCertificate(pem: pem)
            try certificate.checkValidity()
            try certificate.checkPrivateKey(key)
        }
    }

    static func checkDestinationURL(_ url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host, !host.isEmpty else {
            throw AdminError("destination URL '\(url)' is not http(s)://host[:port]/path")
        }
        guard components.user == nil, components.password == nil else { throw AdminError("a destination URL may not carry credentials") }
        switch scheme {
        case "https": return
        case "http" where ConfigLoader.isLoopback(host) || host == "localhost": return
        default: throw AdminError("a destination URL is https://, or http:// to a loopback address only")
        }
    }
}
