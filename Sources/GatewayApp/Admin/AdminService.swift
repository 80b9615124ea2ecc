import Foundation
import GatewayCore
import GatewayStore
import GatewayVault

/// The operations behind `klarna-gateway partners|merchants|callers|keys`: validation, sealing and storage.
///
/// Every method validates first and writes once, so a refused command changes nothing. Opened secrets live in
/// local values only and are never part of a return value except where the caller must see them once (a new
/// caller token).
public struct AdminService: Sendable {
    /// The store written to.
    public let store: any GatewayStore
    /// Seals new secrets and opens stored ones.
    public let sealer: SecretSealer
    /// Where the key ring came from; `keys rotate` needs a file.
    public let keyOrigin: MasterKeyOrigin?

    /// Makes a service over a store and a sealer.
    public init(store: any GatewayStore, sealer: SecretSealer, keyOrigin: MasterKeyOrigin? = nil) {
        self.store = store
        self.sealer = sealer
        self.keyOrigin = keyOrigin
    }

    /// Opens the configured store and key ring.
    public static func open(
        config: GatewayConfig, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> AdminService {
        let (ring, origin) = try config.loadMasterKeyRing(environment: environment)
        let store = try await config.openStore()
        return AdminService(store: store, sealer: SecretSealer(ring: ring), keyOrigin: origin)
    }

    /// The hot-path credentials, opened; see `CredentialLoader`.
    public func loadCredentials() async throws -> LoadedCredentials {
        try await CredentialLoader(store: store, sealer: sealer).loadCredentials()
    }

    /// Why a string cannot be an id of `kind` (partner, caller), by the merchant id rules; nil when it can.
    static func idProblem(_ id: String, kind: String) -> String? {
        MerchantRecord.problem(withID: id, kind: kind)
    }
}
