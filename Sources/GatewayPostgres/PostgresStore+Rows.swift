import GatewayCore
import NIOCore
import PostgresNIO

/// Row ⇄ record conversions, mirroring `SQLiteStore`'s so that both stores read back the same records.
extension PostgresStore {
    static func fetchPartners(_ connection: PostgresConnection, _ logger: Logger) async throws -> [PartnerRecord] {
        let rows = try await connection.query(
            """
            SELECT id, environment, base_url, auth_form, api_key_id, api_key_version, client_certificate_pem,
                client_key_id, client_key_version, default_release
            FROM partners ORDER BY id COLLATE "C"
            """, logger: logger)
        var partners: [PartnerRecord] = []
        for try await (id, environment, baseURL, form, keyID, keyVersion, pem, clientKeyID, clientKeyVersion, release)
            in rows.decode((String, String, String, String, String, Int, String, String, Int, String?).self)
        {
            guard let environment = KlarnaEnvironment(rawValue: environment), let form = BasicAuthForm(rawValue: form) else {
                throw StoreError("partner \(id): unknown environment or auth form in the store")
            }
            partners.append(PartnerRecord(
                id: id, environment: environment, baseURL: baseURL, authForm: form,
                apiKey: CredentialRef(id: keyID, version: keyVersion), clientCertificatePEM: pem,
                clientKey: CredentialRef(id: clientKeyID, version: clientKeyVersion), defaultRelease: release))
        }
        return partners
    }

    static func fetchMerchants(
        _ connection: PostgresConnection, _ logger: Logger, id: String? = nil, account: String? = nil
    ) async throws -> [MerchantRecord] {
        let columns = merchantColumns
        let query: PostgresQuery
        if let id {
            query = "SELECT \(unescaped: columns) FROM merchants WHERE id = \(id)"
        } else if let account {
            query = "SELECT \(unescaped: columns) FROM merchants WHERE account = \(account)"
        } else {
            query = "SELECT \(unescaped: columns) FROM merchants ORDER BY id COLLATE \"C\""
        }
        return try await fetchMerchants(connection, logger, query: query)
    }

    /// Merchant columns in the order `fetchMerchants(_:_:query:)` decodes them.
    static let merchantColumns = "id, partner_id, account, groups, status, api_key_id, api_key_version, release"

    /// The merchants a query selecting `merchantColumns` returns.
    static func fetchMerchants(_ connection: PostgresConnection, _ logger: Logger, query: PostgresQuery) async throws -> [MerchantRecord] {
        var merchants: [MerchantRecord] = []
        let rows = try await connection.query(query, logger: logger)
        for try await (id, partnerID, accountText, groupsText, statusText, keyID, keyVersion, release)
            in rows.decode((String, String, String, String, String, String?, Int?, String?).self)
        {
            guard let account = AccountKRN(accountText), let status = MerchantStatus(rawValue: statusText),
                let groups = JSONStringArray.parse(groupsText)
            else { throw StoreError("merchant \(id): invalid account KRN, status or groups in the store") }
            merchants.append(MerchantRecord(
                id: id, partnerID: partnerID, account: account, groups: groups, status: status,
                apiKey: keyID.flatMap { id in keyVersion.map { CredentialRef(id: id, version: $0) } }, release: release))
        }
        return merchants
    }

    static func fetchCallers(_ connection: PostgresConnection, _ logger: Logger) async throws -> [CallerRecord] {
        let rows = try await connection.query(
            "SELECT id, token_id, token_hash, certificate_fingerprint, status FROM callers ORDER BY id COLLATE \"C\"", logger: logger)
        var callers: [CallerRecord] = []
        for try await (id, tokenID, tokenHash, fingerprint, statusText) in rows.decode((String, String?, String?, String?, String).self) {
            guard let status = CallerStatus(rawValue: statusText) else { throw StoreError("caller \(id): invalid status in the store") }
            callers.append(CallerRecord(id: id, tokenID: tokenID, tokenHash: tokenHash, certificateFingerprint: fingerprint, status: status))
        }
        return callers
    }

    static func fetchSecrets(_ connection: PostgresConnection, _ logger: Logger) async throws -> [SealedSecret] {
        // COLLATE "C": the same byte order as SQLite's, whatever the database's collation.
        let rows = try await connection.query(
            """
            SELECT owner, credential_id, credential_version, key_version, combined FROM secrets
            ORDER BY owner COLLATE "C", credential_id COLLATE "C", credential_version
            """, logger: logger)
        var secrets: [SealedSecret] = []
        for try await (owner, credentialID, credentialVersion, keyVersion, combined) in rows.decode((String, String, Int, Int, ByteBuffer).self) {
            secrets.append(SealedSecret(
                owner: owner, credential: CredentialRef(id: credentialID, version: credentialVersion), keyVersion: keyVersion,
                combined: Array(combined.readableBytesView)))
        }
        return secrets
    }

    static func fetchRollouts(_ connection: PostgresConnection, _ logger: Logger) async throws -> [Rollout] {
        let rows = try await connection.query(
            "SELECT release, group_name, percent FROM rollouts ORDER BY release COLLATE \"C\", group_name COLLATE \"C\"", logger: logger)
        var rollouts: [Rollout] = []
        for try await (release, group, percent) in rows.decode((String, String, Double).self) {
            rollouts.append(Rollout(release: release, percent: percent, group: group.isEmpty ? nil : group))
        }
        return rollouts
    }

    /// Upserts secrets with one statement (arrays unnested server-side): a bulk import is one round trip.
    static func upsert(_ secrets: [SealedSecret], _ connection: PostgresConnection, _ logger: Logger) async throws {
        guard !secrets.isEmpty else { return }
        // The last of duplicates wins, as with SQLite's row-by-row upsert; one statement may not touch a row twice.
        var latest: [String: Int] = [:]
        for (index, secret) in secrets.enumerated() {
            latest["\(secret.owner)\u{0}\(secret.credential.id)\u{0}\(secret.credential.version)"] = index
        }
        let unique = latest.values.sorted().map { secrets[$0] }
        try await connection.query(
            """
            INSERT INTO secrets (owner, credential_id, credential_version, key_version, combined)
            SELECT * FROM unnest(\(unique.map(\.owner))::text[], \(unique.map(\.credential.id))::text[],
                \(unique.map(\.credential.version))::int8[], \(unique.map(\.keyVersion))::int8[],
                \(unique.map { ByteBuffer(bytes: $0.combined) })::bytea[])
            ON CONFLICT (owner, credential_id, credential_version) DO UPDATE SET
                key_version = excluded.key_version, combined = excluded.combined
            """, logger: logger)
    }
}
