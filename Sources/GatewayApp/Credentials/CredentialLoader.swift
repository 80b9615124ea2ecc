import Foundation
import GatewayCore
import GatewayStore
import GatewayVault

/// Reads the store in one transaction and opens every secret the hot path needs.
///
/// Partners or merchants whose secrets do not open are collected and reported together, by id, so one reload
/// tells the operator everything that is broken; a failing load leaves the running snapshot in place.
public struct CredentialLoader: CredentialSource {
    /// The store read from.
    public let store: any GatewayStore
    /// Opens the sealed secrets when no key-ring source is given.
    public let sealer: SecretSealer
    /// Reads the key ring afresh for each load, so a `keys rotate` by another process is picked up.
    let ringSource: (@Sendable () throws -> MasterKeyRing)?

    /// Makes a loader with a fixed key ring.
    public init(store: any GatewayStore, sealer: SecretSealer) {
        self.store = store
        self.sealer = sealer
        self.ringSource = nil
    }

    /// Opens the configured store and key ring (the running gateway's entry point); every load re-reads the ring
    /// from its configured source, refusing a key file that has become readable by others.
    public static func open(
        config: GatewayConfig, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> CredentialLoader {
        let service = try await AdminService.open(config: config, environment: environment)
        return CredentialLoader(
            store: service.store, sealer: service.sealer,
            ringSource: { try config.loadMasterKeyRing(environment: environment).ring })
    }

    init(store: any GatewayStore, sealer: SecretSealer, ringSource: (@Sendable () throws -> MasterKeyRing)?) {
        self.store = store
        self.sealer = sealer
        self.ringSource = ringSource
    }

    /// Every partner, merchant and caller ready for `GatewaySnapshot`, and the generation they belong to.
    public func loadCredentials() async throws -> LoadedCredentials {
        let sealer = try ringSource.map { SecretSealer(ring: try $0()) } ?? self.sealer
        let contents = try await store.contents()
        var sealed: [String: SealedSecret] = [:]
        for secret in contents.secrets { sealed[key(secret.owner, secret.credential)] = secret }
        var problems: [String] = []

        func open(_ owner: String, _ credential: CredentialRef) throws -> Secret {
            guard let secret = sealed[key(owner, credential)] else {
                throw AdminError("secret \(credential) is missing from the store")
            }
            return try sealer.open(secret)
        }

        var partners: [PartnerState] = []
        var forms: [String: BasicAuthForm] = [:]
        for record in contents.partners {
            let owner = SecretOwner.partner(record.id)
            do {
                let apiKey = try open(owner, record.apiKey)
                let clientKey = try open(owner, record.clientKey)
                let certificate = try ClientCertificate(pem: record.clientCertificatePEM)
                guard let state = PartnerState(
                    record: record, apiKey: apiKey, clientKeyPEM: clientKey, certificateFingerprint: certificate.fingerprint)
                else { throw AdminError("invalid base URL \(record.baseURL)") }
                partners.append(state)
                forms[record.id] = record.authForm
            } catch {
                problems.append("partner '\(record.id)': \(error)")
            }
        }

        var merchants: [MerchantState] = []
        merchants.reserveCapacity(contents.merchants.count)
        for record in contents.merchants {
            do {
                let ownKey = try record.apiKey.map { try open(SecretOwner.merchant(record.id), $0) }
                merchants.append(MerchantState(record: record, ownKey: ownKey, form: forms[record.partnerID] ?? .rawKey))
            } catch {
                problems.append("merchant '\(record.id)': \(error)")
            }
        }

        guard problems.isEmpty else {
            throw AdminError("cannot load credentials: " + problems.joined(separator: "; "))
        }
        return LoadedCredentials(
            partners: partners, merchants: merchants, callers: contents.callers, rollouts: contents.rollouts, policies: contents.policies,
            generation: contents.generation)
    }

    /// The store's change counter.
    public func generation() async throws -> Int64 { try await store.generation() }

    /// Everything the snapshot needs, secrets opened.
    public func load() async throws -> LoadedCredentials { try await loadCredentials() }

    /// The store's change notifications (PostgreSQL's LISTEN/NOTIFY); false for a store that has none.
    public func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool {
        try await store.watchChanges(onChange)
    }

    private func key(_ owner: String, _ credential: CredentialRef) -> String {
        "\(owner)\u{0}\(credential.id)\u{0}\(credential.version)"
    }
}
