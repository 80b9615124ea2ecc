import Foundation
import GatewayCore
import NIOCore
import PostgresNIO

extension PostgresStore {
    /// A number that grows with every committed change, from this process or any other.
    public func generation() async throws -> Int64 {
        try await read { connection in try await PostgresStore.readGeneration(connection, logger) }
    }

    /// Every partner, by id.
    public func partners() async throws -> [PartnerRecord] {
        try await read { connection in try await PostgresStore.fetchPartners(connection, logger) }
    }

    /// Inserts or replaces a partner together with its sealed secrets, atomically.
    public func savePartner(_ partner: PartnerRecord, secrets: [SealedSecret]) async throws {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            try await connection.query(
                """
                INSERT INTO partners (id, environment, base_url, auth_form, api_key_id, api_key_version,
                    client_certificate_pem, client_key_id, client_key_version, default_release)
                VALUES (\(partner.id), \(partner.environment.rawValue), \(partner.baseURL), \(partner.authForm.rawValue),
                    \(partner.apiKey.id), \(partner.apiKey.version), \(partner.clientCertificatePEM), \(partner.clientKey.id),
                    \(partner.clientKey.version), \(partner.defaultRelease))
                ON CONFLICT (id) DO UPDATE SET environment = excluded.environment, base_url = excluded.base_url,
                    auth_form = excluded.auth_form, api_key_id = excluded.api_key_id,
                    api_key_version = excluded.api_key_version, client_certificate_pem = excluded.client_certificate_pem,
                    client_key_id = excluded.client_key_id, client_key_version = excluded.client_key_version,
                    default_release = excluded.default_release
                """, logger: logger)
            try await PostgresStore.upsert(secrets, connection, logger)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Every merchant, by id.
    public func merchants() async throws -> [MerchantRecord] {
        try await read { connection in try await PostgresStore.fetchMerchants(connection, logger) }
    }

    /// The merchant with this id.
    public func merchant(id: String) async throws -> MerchantRecord? {
        try await read { connection in try await PostgresStore.fetchMerchants(connection, logger, id: id).first }
    }

    /// The merchant holding this account, through the unique account index.
    public func merchant(account: AccountKRN) async throws -> MerchantRecord? {
        try await read { connection in try await PostgresStore.fetchMerchants(connection, logger, account: account.rawValue).first }
    }

    /// Inserts or replaces merchants and their secrets in one transaction, one statement for all merchants (a
    /// 10,000-merchant import is one round trip, not 10,000).
    public func saveMerchants(_ merchants: [MerchantRecord], secrets: [SealedSecret]) async throws {
        // The last of duplicate ids wins, as with SQLite's row-by-row upsert; one statement may not touch a row twice.
        var latest: [String: Int] = [:]
        for (index, merchant) in merchants.enumerated() { latest[merchant.id] = index }
        let unique = latest.values.sorted().map { merchants[$0] }
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            if !unique.isEmpty {
                // Arrays cannot hold NULLs through these bindings: a flag per optional column says which are set.
                try await connection.query(
                    """
                    INSERT INTO merchants (id, partner_id, account, groups, status, api_key_id, api_key_version, release)
                    SELECT id, partner_id, account, groups, status,
                        CASE WHEN has_key THEN key_id END, CASE WHEN has_key THEN key_version END,
                        CASE WHEN has_release THEN release END
                    FROM unnest(\(unique.map(\.id))::text[], \(unique.map(\.partnerID))::text[],
                        \(unique.map(\.account.rawValue))::text[], \(unique.map { JSONStringArray.render($0.groups) })::text[],
                        \(unique.map(\.status.rawValue))::text[], \(unique.map { $0.apiKey != nil })::bool[],
                        \(unique.map { $0.apiKey?.id ?? "" })::text[], \(unique.map { $0.apiKey?.version ?? 0 })::int8[],
                        \(unique.map { $0.release != nil })::bool[], \(unique.map { $0.release ?? "" })::text[])
                        AS m(id, partner_id, account, groups, status, has_key, key_id, key_version, has_release, release)
                    ON CONFLICT (id) DO UPDATE SET partner_id = excluded.partner_id, account = excluded.account,
                        groups = excluded.groups, status = excluded.status, api_key_id = excluded.api_key_id,
                        api_key_version = excluded.api_key_version, release = excluded.release
                    """, logger: logger)
            }
            try await PostgresStore.upsert(secrets, connection, logger)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Deletes a partner and every version of its secrets unless a merchant uses it; the count and the delete are
    /// made under the store's write lock, which every writer takes first, so no merchant is added in between.
    public func deletePartner(id: String) async throws -> PartnerDeletion {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            var merchants = 0
            for try await count in try await connection.query("SELECT COUNT(*) FROM merchants WHERE partner_id = \(id)", logger: logger).decode(Int.self) {
                merchants = count
            }
            guard merchants == 0 else { return .inUse(merchants: merchants) }
            let deleted = try await connection.query("DELETE FROM partners WHERE id = \(id) RETURNING id", logger: logger).collect()
            guard !deleted.isEmpty else { return .notFound }
            try await connection.query("DELETE FROM secrets WHERE owner = \(SecretOwner.partner(id))", logger: logger)
            try await PostgresStore.bumpGeneration(connection, logger)
            return .deleted
        }
    }

    /// Deletes a merchant and every version of its secrets; false when it did not exist.
    public func deleteMerchant(id: String) async throws -> Bool {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            let deleted = try await connection.query("DELETE FROM merchants WHERE id = \(id) RETURNING id", logger: logger).collect()
            guard !deleted.isEmpty else { return false }
            try await connection.query("DELETE FROM secrets WHERE owner = \(SecretOwner.merchant(id))", logger: logger)
            try await PostgresStore.bumpGeneration(connection, logger)
            return true
        }
    }

    /// Every caller, by id.
    public func callers() async throws -> [CallerRecord] {
        try await read { connection in try await PostgresStore.fetchCallers(connection, logger) }
    }

    /// Inserts or replaces a caller.
    public func saveCaller(_ caller: CallerRecord) async throws {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            try await connection.query(
                """
                INSERT INTO callers (id, token_id, token_hash, certificate_fingerprint, status)
                VALUES (\(caller.id), \(caller.tokenID), \(caller.tokenHash), \(caller.certificateFingerprint), \(caller.status.rawValue))
                ON CONFLICT (id) DO UPDATE SET token_id = excluded.token_id, token_hash = excluded.token_hash,
                    certificate_fingerprint = excluded.certificate_fingerprint, status = excluded.status
                """, logger: logger)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Every sealed secret.
    public func sealedSecrets() async throws -> [SealedSecret] {
        try await read { connection in try await PostgresStore.fetchSecrets(connection, logger) }
    }

    /// Replaces sealed secrets in one transaction; a secret with no existing row is refused, since re-sealing
    /// must never invent a credential.
    public func replaceSealedSecrets(_ secrets: [SealedSecret]) async throws {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            try await PostgresStore.update(secrets, connection, logger, refuseMissing: true)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Rewrites every sealed secret with `transform` in one write transaction that holds the writers' lock from
    /// the read on, so no secret written meanwhile is missed; a throwing transform changes nothing.
    public func resealAllSecrets(_ transform: @escaping @Sendable (SealedSecret) throws -> SealedSecret) async throws -> Int {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            let resealed = try await PostgresStore.fetchSecrets(connection, logger).map(transform)
            try await PostgresStore.update(resealed, connection, logger, refuseMissing: false)
            try await PostgresStore.bumpGeneration(connection, logger)
            return resealed.count
        }
    }

    static func update(_ secrets: [SealedSecret], _ connection: PostgresConnection, _ logger: Logger, refuseMissing: Bool) async throws {
        for secret in secrets {
            let updated = try await connection.query(
                """
                UPDATE secrets SET key_version = \(secret.keyVersion), combined = \(ByteBuffer(bytes: secret.combined))
                WHERE owner = \(secret.owner) AND credential_id = \(secret.credential.id)
                    AND credential_version = \(secret.credential.version)
                RETURNING 1
                """, logger: logger).collect()
            if updated.isEmpty && refuseMissing {
                throw StoreError("no stored secret \(secret.credential) of \(secret.owner) to replace")
            }
        }
    }

    /// Everything, read in one snapshot.
    public func contents() async throws -> StoreContents {
        try await read { connection in
            StoreContents(
                generation: try await PostgresStore.readGeneration(connection, logger),
                partners: try await PostgresStore.fetchPartners(connection, logger),
                merchants: try await PostgresStore.fetchMerchants(connection, logger),
                callers: try await PostgresStore.fetchCallers(connection, logger),
                secrets: try await PostgresStore.fetchSecrets(connection, logger),
                rollouts: try await PostgresStore.fetchRollouts(connection, logger),
                policies: try await PostgresStore.fetchPolicyVersions(
                    connection, logger,
                    """
                    SELECT \(unescaped: PostgresStore.policyColumns) FROM policy_versions
                    WHERE id IN (SELECT MAX(id) FROM policy_versions GROUP BY kind) ORDER BY kind
                    """))
        }
    }

    /// Inserts or replaces sealed secrets that belong to no partner or merchant (the gateway's own keys).
    public func saveSecrets(_ secrets: [SealedSecret]) async throws {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            try await PostgresStore.upsert(secrets, connection, logger)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Appends to the change log in a transaction of its own (no generation bump: nothing the gateway serves changed).
    public func appendAdminEvent(_ event: AdminEvent) async throws {
        try await write { connection in try await PostgresStore.insert(event, connection, logger) }
    }

    /// The change log, oldest first; `auditedBy` only for events whose recording is finished.
    public func adminEvents() async throws -> [AdminEvent] {
        try await read { connection in
            var events: [AdminEvent] = []
            let rows = try await connection.query(
                "SELECT time_us, actor, action, detail, CASE WHEN audited_at_us IS NOT NULL THEN audited_by END FROM admin_events ORDER BY id",
                logger: logger)
            for try await (time, actor, action, detail, auditedBy) in rows.decode((Int64, String, String, String, String?).self) {
                events.append(AdminEvent(timeMicros: time, actor: actor, action: action, detail: detail, auditedBy: auditedBy))
            }
            return events
        }
    }

    /// Inserts a change-log event; one the admin API audited itself is inserted as finished.
    static func insert(_ event: AdminEvent, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let finished: Int64? = event.auditedBy == nil ? nil : event.timeMicros
        try await connection.query(
            """
            INSERT INTO admin_events (time_us, actor, action, detail, audited_by, audited_at_us)
            VALUES (\(event.timeMicros), \(event.actor), \(event.action), \(event.detail), \(event.auditedBy), \(finished))
            """, logger: logger)
    }

    /// Staged roll-outs in force.
    public func rollouts() async throws -> [Rollout] {
        try await read { connection in try await PostgresStore.fetchRollouts(connection, logger) }
    }

    /// Inserts or replaces the roll-out of a release for its group (or all merchants).
    public func saveRollout(_ rollout: Rollout) async throws {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            try await connection.query(
                """
                INSERT INTO rollouts (release, group_name, percent) VALUES (\(rollout.release), \(rollout.group ?? ""), \(rollout.percent))
                ON CONFLICT (release, group_name) DO UPDATE SET percent = excluded.percent
                """, logger: logger)
            try await PostgresStore.bumpGeneration(connection, logger)
        }
    }

    /// Removes every roll-out of a release.
    public func deleteRollouts(release: String) async throws -> Int {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            let removed = try await connection.query("DELETE FROM rollouts WHERE release = \(release) RETURNING 1", logger: logger).collect()
            try await PostgresStore.bumpGeneration(connection, logger)
            return removed.count
        }
    }
}
