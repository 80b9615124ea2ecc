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
    /// Who every change is made by in the change log, each change appending its event in its own transaction for
    /// the running nodes to audit (the CLI: the operating-system user); nil appends none, for the admin API, which
    /// audits its changes itself with the admin's name.
    public let changeActor: String?

    /// Makes a service over a store and a sealer; `changeActor` as above.
    public init(
        store: any GatewayStore, sealer: SecretSealer, keyOrigin: MasterKeyOrigin? = nil, changeActor: String? = AdminService.operatingSystemUser()
    ) {
        self.store = store
        self.sealer = sealer
        self.keyOrigin = keyOrigin
        self.changeActor = changeActor
    }

    /// Opens the configured store and key ring; changes are logged as the operating-system user's.
    public static func open(
        config: GatewayConfig, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> AdminService {
        let (ring, origin) = try config.loadMasterKeyRing(environment: environment)
        let store = try await config.openStore()
        return AdminService(store: store, sealer: SecretSealer(ring: ring), keyOrigin: origin)
    }

    /// The user who runs the process (`sudo`'s invoking user first), as the change log names a CLI change's maker.
    public static func operatingSystemUser(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["SUDO_USER"] ?? environment["USER"] ?? "unknown"
    }

    /// Runs one store write with its change-log event pending (`AdminEvent.pending`), so the store appends the event
    /// in the write's own transaction. `actor` names an admin of the API, whose change the API audits itself: its
    /// event is stored as already audited (kept for the release history). Without either actor, no event.
    func changing<Result: Sendable>(
        _ action: String, _ detail: String, actor: String? = nil, _ write: () async throws -> Result
    ) async throws -> Result {
        let event: AdminEvent
        if let actor {
            event = AdminEvent(timeMicros: UTCTime.nowMicros(), actor: actor, action: action, detail: detail, auditedBy: AdminEvent.auditedByAdminAPI)
        } else if let changeActor {
            event = AdminEvent(timeMicros: UTCTime.nowMicros(), actor: changeActor, action: action, detail: detail)
        } else {
            return try await write()
        }
        return try await AdminEvent.$pending.withValue(event) { try await write() }
    }

    /// Appends an event of a change made outside the store (at Klarna) in a transaction of its own.
    func logChange(_ action: String, _ detail: String) async throws {
        guard let changeActor else { return }
        try await store.appendAdminEvent(AdminEvent(timeMicros: UTCTime.nowMicros(), actor: changeActor, action: action, detail: detail))
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
