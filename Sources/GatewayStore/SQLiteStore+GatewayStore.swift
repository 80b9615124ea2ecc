import Foundation
import GatewayCore
import GRDB

extension SQLiteStore {
    /// A number that grows with every committed change, from this process or any other.
    public func generation() async throws -> Int64 {
        try await pool.read { db in try SQLiteStore.readGeneration(db) }
    }

    /// Every partner, by id.
    public func partners() async throws -> [PartnerRecord] {
        try await pool.read { db in try SQLiteStore.fetchPartners(db) }
    }

    /// Inserts or replaces a partner together with its sealed secrets, atomically.
    public func savePartner(_ partner: PartnerRecord, secrets: [SealedSecret]) async throws {
        try await change { db in
            try db.execute(sql: SQLiteStore.partnerUpsert, arguments: SQLiteStore.arguments(partner))
            try SQLiteStore.upsert(secrets, db)
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Deletes a partner and every version of its secrets unless a merchant uses it (counted in the same write
    /// transaction, which SQLite serialises, so no merchant can be added to it between the count and the delete).
    public func deletePartner(id: String) async throws -> PartnerDeletion {
        try await change { db in
            let merchants = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM merchants WHERE partner_id = ?", arguments: [id]) ?? 0
            guard merchants == 0 else { return .inUse(merchants: merchants) }
            try db.execute(sql: "DELETE FROM partners WHERE id = ?", arguments: [id])
            guard db.changesCount > 0 else { return .notFound }
            try db.execute(sql: "DELETE FROM secrets WHERE owner = ?", arguments: [SecretOwner.partner(id)])
            try SQLiteStore.bumpGeneration(db)
            return .deleted
        }
    }

    /// Every merchant, by id.
    public func merchants() async throws -> [MerchantRecord] {
        try await pool.read { db in try SQLiteStore.fetchMerchants(db) }
    }

    /// The merchant with this id.
    public func merchant(id: String) async throws -> MerchantRecord? {
        try await pool.read { db in try SQLiteStore.fetchMerchants(db, whereID: id).first }
    }

    /// The merchant holding this account, through the unique account index.
    public func merchant(account: AccountKRN) async throws -> MerchantRecord? {
        try await pool.read { db in try SQLiteStore.fetchMerchants(db, account: account.rawValue).first }
    }

    /// Inserts or replaces merchants and their secrets in one transaction, with one prepared statement.
    public func saveMerchants(_ merchants: [MerchantRecord], secrets: [SealedSecret]) async throws {
        try await change { db in
            let statement = try db.cachedStatement(sql: SQLiteStore.merchantUpsert)
            for merchant in merchants { try statement.execute(arguments: SQLiteStore.arguments(merchant)) }
            try SQLiteStore.upsert(secrets, db)
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Deletes a merchant and every version of its secrets; false when it did not exist.
    public func deleteMerchant(id: String) async throws -> Bool {
        try await change { db in
            try db.execute(sql: "DELETE FROM merchants WHERE id = ?", arguments: [id])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "DELETE FROM secrets WHERE owner = ?", arguments: [SecretOwner.merchant(id)])
            try SQLiteStore.bumpGeneration(db)
            return true
        }
    }

    /// Every caller, by id.
    public func callers() async throws -> [CallerRecord] {
        try await pool.read { db in try SQLiteStore.fetchCallers(db) }
    }

    /// Inserts or replaces a caller.
    public func saveCaller(_ caller: CallerRecord) async throws {
        try await change { db in
            try db.execute(sql: SQLiteStore.callerUpsert, arguments: SQLiteStore.arguments(caller))
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Every sealed secret.
    public func sealedSecrets() async throws -> [SealedSecret] {
        try await pool.read { db in try SQLiteStore.fetchSecrets(db) }
    }

    /// Replaces sealed secrets in one transaction; a secret with no existing row is refused, since re-sealing
    /// must never invent a credential.
    public func replaceSealedSecrets(_ secrets: [SealedSecret]) async throws {
        try await change { db in
            let statement = try db.cachedStatement(sql: """
                UPDATE secrets SET key_version = ?, combined = ?
                WHERE owner = ? AND credential_id = ? AND credential_version = ?
                """)
            for secret in secrets {
                try statement.execute(arguments: [
                    secret.keyVersion, Data(secret.combined), secret.owner, secret.credential.id, secret.credential.version,
                ])
                if db.changesCount == 0 { throw StoreError("no stored secret \(secret.credential) of \(secret.owner) to replace") }
            }
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Rewrites every sealed secret with `transform` in one write transaction; a throwing transform changes nothing.
    public func resealAllSecrets(_ transform: @escaping @Sendable (SealedSecret) throws -> SealedSecret) async throws -> Int {
        try await change { db in
            let resealed = try SQLiteStore.fetchSecrets(db).map(transform)
            let statement = try db.cachedStatement(sql: """
                UPDATE secrets SET key_version = ?, combined = ?
                WHERE owner = ? AND credential_id = ? AND credential_version = ?
                """)
            for secret in resealed {
                try statement.execute(arguments: [
                    secret.keyVersion, Data(secret.combined), secret.owner, secret.credential.id, secret.credential.version,
                ])
            }
            try SQLiteStore.bumpGeneration(db)
            return resealed.count
        }
    }

    /// Everything, read in one transaction.
    public func contents() async throws -> StoreContents {
        try await pool.read { db in
            StoreContents(
                generation: try SQLiteStore.readGeneration(db), partners: try SQLiteStore.fetchPartners(db),
                merchants: try SQLiteStore.fetchMerchants(db), callers: try SQLiteStore.fetchCallers(db),
                secrets: try SQLiteStore.fetchSecrets(db), rollouts: try SQLiteStore.fetchRollouts(db),
                policies: try SQLiteStore.newestPolicyVersions(db)
            )
        }
    }

    /// Inserts or replaces the gateway's own sealed secrets.
    public func saveSecrets(_ secrets: [SealedSecret]) async throws {
        try await change { db in
            for secret in secrets {
                try db.execute(
                    sql: """
                        INSERT INTO secrets (owner, credential_id, credential_version, key_version, combined) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (owner, credential_id, credential_version)
                        DO UPDATE SET key_version = excluded.key_version, combined = excluded.combined
                        """,
                    arguments: [secret.owner, secret.credential.id, secret.credential.version, secret.keyVersion, Data(secret.combined)])
            }
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Appends to the change log in a transaction of its own (no generation bump: nothing the gateway serves changed).
    public func appendAdminEvent(_ event: AdminEvent) async throws {
        try await pool.write { db in try SQLiteStore.insert(event, db) }
    }

    /// The change log, oldest first; `auditedBy` only for events whose recording is finished.
    public func adminEvents() async throws -> [AdminEvent] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT time_us, actor, action, detail, CASE WHEN audited_at_us IS NOT NULL THEN audited_by END FROM admin_events ORDER BY id"
            ).map {
                AdminEvent(timeMicros: $0[0], actor: $0[1], action: $0[2], detail: $0[3], auditedBy: $0[4])
            }
        }
    }

    /// Runs `body` in a write transaction that also appends the task's pending change-log event
    /// (`AdminEvent.pending`), unless the write changed nothing: the change and its event commit together.
    func change<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        guard let event = AdminEvent.pending else { return try await pool.write(body) }
        return try await pool.write { db in
            let result = try body(db)
            if !AdminEvent.changedNothing(result) { try SQLiteStore.insert(event, db) }
            return result
        }
    }

    /// Inserts a change-log event; one the admin API audited itself is inserted as finished.
    static func insert(_ event: AdminEvent, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO admin_events (time_us, actor, action, detail, audited_by, audited_at_us) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [event.timeMicros, event.actor, event.action, event.detail, event.auditedBy, event.auditedBy == nil ? nil : event.timeMicros])
    }

    /// Staged roll-outs in force.
    public func rollouts() async throws -> [Rollout] {
        try await pool.read { db in try SQLiteStore.fetchRollouts(db) }
    }

    /// Inserts or replaces the roll-out of a release for its group (or all merchants).
    public func saveRollout(_ rollout: Rollout) async throws {
        try await change { db in
            try db.execute(
                sql: """
                    INSERT INTO rollouts (release, group_name, percent) VALUES (?, ?, ?)
                    ON CONFLICT (release, group_name) DO UPDATE SET percent = excluded.percent
                    """,
                arguments: [rollout.release, rollout.group ?? "", rollout.percent])
            try SQLiteStore.bumpGeneration(db)
        }
    }

    /// Removes every roll-out of a release.
    public func deleteRollouts(release: String) async throws -> Int {
        try await change { db in
            try db.execute(sql: "DELETE FROM rollouts WHERE release = ?", arguments: [release])
            let removed = db.changesCount
            try SQLiteStore.bumpGeneration(db)
            return removed
        }
    }

    static func fetchRollouts(_ db: Database) throws -> [Rollout] {
        try Row.fetchAll(db, sql: "SELECT release, group_name, percent FROM rollouts ORDER BY release, group_name").map { row in
            let group: String = row[1]
            return Rollout(release: row[0], percent: row[2], group: group.isEmpty ? nil : group)
        }
    }
}
