import Foundation
import GatewayCore
import GRDB

/// Row ⇄ record conversions; columns are spelled out so the schema stays readable in SQL.
extension SQLiteStore {
    static let partnerUpsert = """
        INSERT INTO partners (id, environment, base_url, auth_form, api_key_id, api_key_version,
            client_certificate_pem, client_key_id, client_key_version, default_release)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(id) DO UPDATE SET environment = excluded.environment, base_url = excluded.base_url,
            auth_form = excluded.auth_form, api_key_id = excluded.api_key_id, api_key_version = excluded.api_key_version,
            client_certificate_pem = excluded.client_certificate_pem, client_key_id = excluded.client_key_id,
            client_key_version = excluded.client_key_version, default_release = excluded.default_release
        """

    // An upsert, not INSERT OR REPLACE: REPLACE would silently delete another merchant holding the same KRN.
    static let merchantUpsert = """
        INSERT INTO merchants (id, partner_id, account, groups, status, api_key_id, api_key_version, release)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(id) DO UPDATE SET partner_id = excluded.partner_id, account = excluded.account,
            groups = excluded.groups, status = excluded.status, api_key_id = excluded.api_key_id,
            api_key_version = excluded.api_key_version, release = excluded.release
        """

    static let callerUpsert = """
        INSERT INTO callers (id, token_id, token_hash, certificate_fingerprint, status) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(id) DO UPDATE SET token_id = excluded.token_id, token_hash = excluded.token_hash,
            certificate_fingerprint = excluded.certificate_fingerprint, status = excluded.status
        """

    static let secretUpsert = """
        INSERT INTO secrets (owner, credential_id, credential_version, key_version, combined) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(owner, credential_id, credential_version) DO UPDATE SET
            key_version = excluded.key_version, combined = excluded.combined
        """

    static func arguments(_ partner: PartnerRecord) -> StatementArguments {
        [
            partner.id, partner.environment.rawValue, partner.baseURL, partner.authForm.rawValue, partner.apiKey.id,
            partner.apiKey.version, partner.clientCertificatePEM, partner.clientKey.id, partner.clientKey.version,
            partner.defaultRelease,
        ]
    }

    static func arguments(_ merchant: MerchantRecord) -> StatementArguments {
        [
            merchant.id, merchant.partnerID, merchant.account.rawValue, JSONStringArray.render(merchant.groups),
            merchant.status.rawValue, merchant.apiKey?.id, merchant.apiKey?.version, merchant.release,
        ]
    }

    static func arguments(_ caller: CallerRecord) -> StatementArguments {
        [caller.id, caller.tokenID, caller.tokenHash, caller.certificateFingerprint, caller.status.rawValue]
    }

    static func arguments(_ secret: SealedSecret) -> StatementArguments {
        [secret.owner, secret.credential.id, secret.credential.version, secret.keyVersion, Data(secret.combined)]
    }

    static func partner(_ row: Row) throws -> PartnerRecord {
        let id: String = row["id"]
        guard let environment = KlarnaEnvironment(rawValue: row["environment"]),
            let form = BasicAuthForm(rawValue: row["auth_form"])
        else { throw StoreError("partner \(id): unknown environment or auth form in the store") }
        return PartnerRecord(
            id: id, environment: environment, baseURL: row["base_url"], authForm: form,
            apiKey: CredentialRef(id: row["api_key_id"], version: row["api_key_version"]),
            clientCertificatePEM: row["client_certificate_pem"],
            clientKey: CredentialRef(id: row["client_key_id"], version: row["client_key_version"]),
            defaultRelease: row["default_release"]
        )
    }

    /// Merchant columns in the order `merchant(_:)` reads them by index: tens of thousands of rows are read on
    /// every reload, and index access skips the per-row column-name lookup.
    static let merchantColumns = "id, partner_id, account, groups, status, api_key_id, api_key_version, release"

    static func merchant(_ row: Row) throws -> MerchantRecord {
        let id: String = row[0]
        let accountText: String = row[2]
        let groupsText: String = row[3]
        let statusText: String = row[4]
        guard let account = AccountKRN(accountText), let status = MerchantStatus(rawValue: statusText),
            let groups = JSONStringArray.parse(groupsText)
        else {
            throw StoreError("merchant \(id): invalid account KRN, status or groups in the store")
        }
        let keyID: String? = row[5]
        let keyVersion: Int? = row[6]
        return MerchantRecord(
            id: id, partnerID: row[1], account: account, groups: groups, status: status,
            apiKey: keyID.flatMap { id in keyVersion.map { CredentialRef(id: id, version: $0) } },
            release: row[7]
        )
    }

    static func caller(_ row: Row) throws -> CallerRecord {
        let id: String = row["id"]
        guard let status = CallerStatus(rawValue: row["status"]) else { throw StoreError("caller \(id): invalid status in the store") }
        return CallerRecord(
            id: id, tokenID: row["token_id"], tokenHash: row["token_hash"],
            certificateFingerprint: row["certificate_fingerprint"], status: status
        )
    }

    static func secret(_ row: Row) -> SealedSecret {
        let combined: Data = row["combined"]
        return SealedSecret(
            owner: row["owner"], credential: CredentialRef(id: row["credential_id"], version: row["credential_version"]),
            keyVersion: row["key_version"], combined: Array(combined)
        )
    }

    static func fetchPartners(_ db: Database) throws -> [PartnerRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM partners ORDER BY id").map(partner)
    }

    static func fetchMerchants(_ db: Database, whereID id: String? = nil, account: String? = nil) throws -> [MerchantRecord] {
        let cursor: RowCursor
        if let id {
            cursor = try Row.fetchCursor(db, sql: "SELECT \(merchantColumns) FROM merchants WHERE id = ?", arguments: [id])
        } else if let account {
            cursor = try Row.fetchCursor(
                db, sql: "SELECT \(merchantColumns) FROM merchants WHERE account = ?", arguments: [account])
        } else {
            cursor = try Row.fetchCursor(db, sql: "SELECT \(merchantColumns) FROM merchants ORDER BY id")
        }
        return try merchants(cursor)
    }

    /// Every merchant a cursor over `merchantColumns` yields.
    static func merchants(_ cursor: RowCursor) throws -> [MerchantRecord] {
        var merchants: [MerchantRecord] = []
        while let row = try cursor.next() { merchants.append(try merchant(row)) }
        return merchants
    }

    static func fetchCallers(_ db: Database) throws -> [CallerRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM callers ORDER BY id").map(caller)
    }

    static func fetchSecrets(_ db: Database) throws -> [SealedSecret] {
        try Row.fetchAll(db, sql: "SELECT * FROM secrets ORDER BY owner, credential_id, credential_version").map(secret)
    }

    static func upsert(_ secrets: [SealedSecret], _ db: Database) throws {
        let statement = try db.cachedStatement(sql: secretUpsert)
        for secret in secrets { try statement.execute(arguments: arguments(secret)) }
    }
}
