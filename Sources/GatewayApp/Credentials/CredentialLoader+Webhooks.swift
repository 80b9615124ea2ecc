import GatewayCore
import GatewayPolicy
import GatewayVault
import GatewayWebhooks

extension CredentialLoader {
    /// The store's webhook tables (both stores have them).
    public var webhookStore: (any WebhookStore)? { store as? any WebhookStore }

    /// Opens every partner's signing keys and every destination's secrets, and loads the routes checked against the
    /// destinations that exist; a key or secret that does not open fails the whole reload, like a partner's would.
    public func loadWebhookDirectory(routesPath: String?) async throws -> WebhookDirectory {
        guard let webhookStore else { return .empty }
        let sealer = try ringSource.map { SecretSealer(ring: try $0()) } ?? self.sealer
        let secrets = try await store.sealedSecrets()
        let records = try await webhookStore.webhookDestinations()
        var keys: [String: [String: Secret]] = [:]
        var bySlot: [String: SealedSecret] = [:]
        let signingPrefix = SecretOwner.webhookSigning("")
        for secret in secrets {
            if secret.owner.hasPrefix(signingPrefix) {
                let partner = String(secret.owner.dropFirst(signingPrefix.count))
                do {
                    keys[partner, default: [:]][secret.credential.id] = try sealer.open(secret)
                } catch {
                    throw AdminError("webhook signing key \(secret.credential.id) of partner '\(partner)': \(error)")
                }
            } else {
                bySlot["\(secret.owner)\u{0}\(secret.credential.id)\u{0}\(secret.credential.version)"] = secret
            }
        }
        func open(_ owner: String, _ credential: CredentialRef?) throws -> Secret? {
            guard let credential else { return nil }
            guard let sealed = bySlot["\(owner)\u{0}\(credential.id)\u{0}\(credential.version)"] else {
                throw AdminError("secret \(credential) is missing from the store")
            }
            return try sealer.open(sealed)
        }
        var destinations: [String: WebhookDestination] = [:]
        for record in records {
            let owner = SecretOwner.webhookDestination(record.name)
            do {
                destinations[record.name] = WebhookDestination(
                    record: record, secret: try open(owner, record.secret), clientKeyPEM: try open(owner, record.clientKey))
            } catch {
                throw AdminError("webhook destination '\(record.name)': \(error)")
            }
        }
        let routes = try routesPath.map { try PolicyLoader.loadWebhookRoutes(path: $0, knownDestinations: Set(destinations.keys)) } ?? .empty
        return WebhookDirectory(keys: WebhookSigningKeys(keys), routes: routes, destinations: destinations)
    }
}
