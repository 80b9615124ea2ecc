/// A secret sealed at rest: AES-256-GCM under a key derived from the master key version for its owner.
public struct SealedSecret: Sendable, Hashable, Codable {
    /// The owner the secret is bound to (`partner:acq_test`, `merchant:m_1001`, `gateway`).
    public var owner: String
    /// Which credential of the owner, and which version of it.
    public var credential: CredentialRef
    /// The master key version it is sealed under.
    public var keyVersion: Int
    /// Nonce, ciphertext and tag (AES-GCM combined form).
    public var combined: [UInt8]

    /// Makes a sealed secret.
    public init(owner: String, credential: CredentialRef, keyVersion: Int, combined: [UInt8]) {
        self.owner = owner
        self.credential = credential
        self.keyVersion = keyVersion
        self.combined = combined
    }
}

/// What `GatewayStore.deletePartner` did.
public enum PartnerDeletion: Sendable, Hashable {
    /// The partner and its secrets are gone.
    case deleted
    /// No partner has that id.
    case notFound
    /// Merchants still use the partner (how many); nothing was deleted.
    case inUse(merchants: Int)
}

/// Everything the gateway persists besides audit records, behind one protocol so that the SQLite store and a
/// PostgreSQL store can be swapped with the same semantics.
///
/// Writes bump `generation()`, which running gateways poll to rebuild their snapshot; nothing on the request
/// path calls the store.
public protocol GatewayStore: Sendable {
    /// Creates or upgrades the schema (versioned steps in a `schema_migrations` table); safe to call from several
    /// processes at once, and refuses a schema newer than this binary knows.
    @discardableResult func migrate() async throws -> SchemaStatus
    /// A number that grows with every committed change (from any process).
    func generation() async throws -> Int64

    /// Every partner.
    func partners() async throws -> [PartnerRecord]
    /// Inserts or replaces a partner together with its sealed secrets, atomically.
    func savePartner(_ partner: PartnerRecord, secrets: [SealedSecret]) async throws
    /// Deletes a partner and every version of its secrets unless a merchant still uses it, checked in the same
    /// transaction as the delete, so a merchant added meanwhile cannot be left without its partner.
    func deletePartner(id: String) async throws -> PartnerDeletion

    /// Every merchant.
    func merchants() async throws -> [MerchantRecord]
    /// Inserts or replaces merchants (and any sealed secrets), in one transaction.
    func saveMerchants(_ merchants: [MerchantRecord], secrets: [SealedSecret]) async throws
    /// Deletes a merchant and its secrets; false when it did not exist.
    func deleteMerchant(id: String) async throws -> Bool

    /// Every caller.
    func callers() async throws -> [CallerRecord]
    /// Inserts or replaces a caller.
    func saveCaller(_ caller: CallerRecord) async throws

    /// Every sealed secret.
    func sealedSecrets() async throws -> [SealedSecret]
    /// Replaces sealed secrets (same owner, credential and version) in one transaction; used by re-sealing.
    func replaceSealedSecrets(_ secrets: [SealedSecret]) async throws

    /// Rewrites every sealed secret with `transform` inside one write transaction (read and write together, so
    /// a secret added concurrently cannot be missed); returns how many were rewritten. Used by master key rotation.
    func resealAllSecrets(_ transform: @escaping @Sendable (SealedSecret) throws -> SealedSecret) async throws -> Int

    /// Everything at once, read in one transaction so the parts and the generation agree.
    func contents() async throws -> StoreContents
    /// The merchant with this id (a store can find one without reading them all).
    func merchant(id: String) async throws -> MerchantRecord?
    /// The merchant holding this Klarna account, if any.
    func merchant(account: AccountKRN) async throws -> MerchantRecord?

    /// Inserts or replaces sealed secrets that belong to no partner or merchant (the gateway's own keys).
    func saveSecrets(_ secrets: [SealedSecret]) async throws

    /// Appends an entry to the store's change log (release roll-outs, pins), for the people who must answer
    /// "who moved these merchants, and when".
    func appendAdminEvent(_ event: AdminEvent) async throws
    /// The change log, oldest first.
    func adminEvents() async throws -> [AdminEvent]

    /// Staged roll-outs in force.
    func rollouts() async throws -> [Rollout]
    /// Inserts or replaces the roll-out of a release (for its group, or for all merchants).
    func saveRollout(_ rollout: Rollout) async throws
    /// Removes every roll-out of a release; returns how many there were.
    func deleteRollouts(release: String) async throws -> Int

    /// Calls `onChange` soon after any process commits a change, until the calling task is cancelled; returns
    /// false at once when the store cannot push changes (then polling `generation()` is the only way).
    func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool
}

/// Where a store's schema stands after `migrate()`.
public struct SchemaStatus: Sendable, Equatable {
    /// The highest version applied.
    public var version: Int
    /// The versions this call applied, oldest first (empty when the store was current).
    public var appliedNow: [Int]

    /// Makes a status.
    public init(version: Int, appliedNow: [Int]) {
        self.version = version
        self.appliedNow = appliedNow
    }
}

/// One entry of the store's change log.
public struct AdminEvent: Sendable, Hashable, Codable {
    /// Microseconds since the Unix epoch, UTC.
    public var timeMicros: Int64
    /// Who made the change (the operating-system user of the CLI).
    public var actor: String
    /// What was done (`releases.rollout`).
    public var action: String
    /// The change's parameters, human-readable, never a secret.
    public var detail: String
    /// The node (or `admin-api`) that has recorded it in an audit chain; nil while no node has finished recording it.
    public var auditedBy: String?

    /// Makes an event; `auditedBy` is set only for an event already audited where it was made (the admin API's).
    public init(timeMicros: Int64, actor: String, action: String, detail: String, auditedBy: String? = nil) {
        self.timeMicros = timeMicros
        self.actor = actor
        self.action = action
        self.detail = detail
        self.auditedBy = auditedBy
    }
}

/// Every record of a store as of one generation.
public struct StoreContents: Sendable {
    /// The generation the records belong to.
    public var generation: Int64
    /// Every partner.
    public var partners: [PartnerRecord]
    /// Every merchant.
    public var merchants: [MerchantRecord]
    /// Every caller.
    public var callers: [CallerRecord]
    /// Every sealed secret.
    public var secrets: [SealedSecret]
    /// Staged roll-outs in force.
    public var rollouts: [Rollout]
    /// The newest stored version of each policy kind that has one (a store without the table, or without rows: none).
    public var policies: [PolicyVersion]

    /// Makes contents.
    public init(
        generation: Int64, partners: [PartnerRecord], merchants: [MerchantRecord], callers: [CallerRecord],
        secrets: [SealedSecret], rollouts: [Rollout] = [], policies: [PolicyVersion] = []
    ) {
        self.generation = generation
        self.partners = partners
        self.merchants = merchants
        self.callers = callers
        self.secrets = secrets
        self.rollouts = rollouts
        self.policies = policies
    }
}

extension GatewayStore {
    /// No push by default: SQLite has no cross-process notification, so gateways poll its generation.
    public func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool { false }

    /// The partner with this id.
    public func partner(id: String) async throws -> PartnerRecord? { try await partners().first { $0.id == id } }
    /// The merchant with this id.
    public func merchant(id: String) async throws -> MerchantRecord? { try await merchants().first { $0.id == id } }
    /// The merchant holding this account.
    public func merchant(account: AccountKRN) async throws -> MerchantRecord? {
        try await merchants().first { $0.account == account }
    }
    /// The caller with this id.
    public func caller(id: String) async throws -> CallerRecord? { try await callers().first { $0.id == id } }
}
