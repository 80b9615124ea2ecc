import Foundation
import GatewayCore
import PostgresNIO

extension PostgresStore: AdminAccountStore, MerchantPaging {
    /// Every admin account, by name.
    public func adminAccounts() async throws -> [AdminAccount] {
        try await read { connection in
            try await PostgresStore.fetchAdminAccounts(
                connection, logger,
                "SELECT \(unescaped: PostgresStore.adminColumns) FROM admin_accounts ORDER BY name COLLATE \"C\"")
        }
    }

    /// The account whose token has this id, through the unique index.
    public func adminAccount(tokenID: String) async throws -> AdminAccount? {
        try await read { connection in
            try await PostgresStore.fetchAdminAccounts(
                connection, logger, "SELECT \(unescaped: PostgresStore.adminColumns) FROM admin_accounts WHERE token_id = \(tokenID)"
            ).first
        }
    }

    /// The account holding this client certificate, through its unique index.
    public func adminAccount(certificateFingerprint: String) async throws -> AdminAccount? {
        try await read { connection in
            try await PostgresStore.fetchAdminAccounts(
                connection, logger,
                "SELECT \(unescaped: PostgresStore.adminColumns) FROM admin_accounts WHERE certificate_fingerprint = \(certificateFingerprint)"
            ).first
        }
    }

    /// Inserts an account; a name already taken fails on the primary key.
    public func insertAdminAccount(_ account: AdminAccount) async throws {
        try await write { connection in
            _ = try await connection.query(
                """
                INSERT INTO admin_accounts (name, role, token_id, token_hash, created_at_us, certificate_fingerprint)
                VALUES (\(account.name), \(account.role.rawValue), \(account.tokenID), \(account.tokenHash), \(account.createdMicros),
                    \(account.certificateFingerprint))
                """, logger: logger)
        }
    }

    /// Deletes an account; false when it did not exist.
    public func deleteAdminAccount(name: String) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query("DELETE FROM admin_accounts WHERE name = \(name) RETURNING name", logger: logger)
            for try await _ in rows.decode(String.self) { return true }
            return false
        }
    }

    /// A page of merchants in byte order of their ids (the `merchants_id_bytes` index); a search filters the rows
    /// after the cursor and stops at the page's end.
    public func merchantPage(after: String?, matching: String?, limit: Int) async throws -> [MerchantRecord] {
        try await read { connection in
            let columns = PostgresStore.merchantColumns
            let query: PostgresQuery
            if let matching {
                let pattern = PostgresStore.containsPattern(matching)
                query = """
                    SELECT \(unescaped: columns) FROM merchants WHERE id COLLATE "C" > \(after ?? "")
                    AND (lower(id) LIKE \(pattern) ESCAPE '\\' OR lower(account) LIKE \(pattern) ESCAPE '\\')
                    ORDER BY id COLLATE "C" LIMIT \(limit)
                    """
            } else {
                query = "SELECT \(unescaped: columns) FROM merchants WHERE id COLLATE \"C\" > \(after ?? "") ORDER BY id COLLATE \"C\" LIMIT \(limit)"
            }
            return try await PostgresStore.fetchMerchants(connection, logger, query: query)
        }
    }

    /// Updates the row only where every column still holds `current`'s value, bumping the generation (and
    /// notifying) when it did.
    public func replaceMerchant(_ current: MerchantRecord, with next: MerchantRecord) async throws -> Bool {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            let rows = try await connection.query(
                """
                UPDATE merchants SET partner_id = \(next.partnerID), account = \(next.account.rawValue),
                    groups = \(JSONStringArray.render(next.groups)), status = \(next.status.rawValue), api_key_id = \(next.apiKey?.id),
                    api_key_version = \(next.apiKey?.version), release = \(next.release)
                WHERE id = \(current.id) AND partner_id = \(current.partnerID) AND account = \(current.account.rawValue)
                    AND groups = \(JSONStringArray.render(current.groups)) AND status = \(current.status.rawValue)
                    AND api_key_id IS NOT DISTINCT FROM \(current.apiKey?.id)
                    AND api_key_version IS NOT DISTINCT FROM \(current.apiKey?.version)
                    AND release IS NOT DISTINCT FROM \(current.release)
                RETURNING id
                """, logger: logger)
            var replaced = false
            for try await _ in rows.decode(String.self) { replaced = true }
            if replaced { try await PostgresStore.bumpGeneration(connection, logger) }
            return replaced
        }
    }

    /// The columns `fetchAdminAccounts` decodes, in its order.
    static let adminColumns = "name, role, token_id, token_hash, created_at_us, certificate_fingerprint"

    static func fetchAdminAccounts(_ connection: PostgresConnection, _ logger: Logger, _ query: PostgresQuery) async throws -> [AdminAccount] {
        var accounts: [AdminAccount] = []
        let rows = try await connection.query(query, logger: logger)
        for try await (name, roleText, tokenID, tokenHash, created, fingerprint) in rows.decode((String, String, String, String, Int64, String?).self) {
            guard let role = AdminRole(rawValue: roleText) else { throw StoreError("admin account \(name): unknown role in the store") }
            accounts.append(
                AdminAccount(name: name, role: role, tokenID: tokenID, tokenHash: tokenHash, createdMicros: created, certificateFingerprint: fingerprint))
        }
        return accounts
    }
}

extension PostgresStore: AdminEventAuditing {
    /// Up to `limit` events no node has claimed, oldest first, through the index of unfinished events.
    public func unclaimedAdminEvents(limit: Int) async throws -> [StoredAdminEvent] {
        try await read { connection in
            try await PostgresStore.storedEvents(
                connection, logger,
                "SELECT id, time_us, actor, action, detail FROM admin_events WHERE audited_by IS NULL AND audited_at_us IS NULL ORDER BY id LIMIT \(limit)")
        }
    }

    /// Claims an event for `node`: the conditional `UPDATE` lets exactly one of several instances win (the row lock
    /// makes a second claimant wait, then find `audited_by` set).
    public func claimAdminEvent(id: Int64, node: String, atMicros: Int64) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                "UPDATE admin_events SET audited_by = \(node), claimed_at_us = \(atMicros) WHERE id = \(id) AND audited_by IS NULL RETURNING id",
                logger: logger)
            for try await _ in rows.decode(Int64.self) { return true }
            return false
        }
    }

    /// Other nodes' claims older than `cutoffMicros` (a claim without a time: its event's), through the index of
    /// unfinished events.
    public func staleAdminEventClaims(claimedBefore cutoffMicros: Int64, excluding node: String, limit: Int) async throws -> [StoredAdminEvent] {
        try await read { connection in
            var events: [StoredAdminEvent] = []
            let rows = try await connection.query(
                """
                SELECT id, time_us, actor, action, detail, audited_by FROM admin_events
                WHERE audited_at_us IS NULL AND audited_by IS NOT NULL AND audited_by <> \(node)
                AND COALESCE(claimed_at_us, time_us) < \(cutoffMicros)
                ORDER BY id LIMIT \(limit)
                """, logger: logger)
            for try await (id, time, actor, action, detail, claimant) in rows.decode((Int64, Int64, String, String, String, String).self) {
                events.append(StoredAdminEvent(id: id, event: AdminEvent(timeMicros: time, actor: actor, action: action, detail: detail), claimedBy: claimant))
            }
            return events
        }
    }

    /// Takes over a stale claim: the row lock makes a second node taking it over wait, then find the claimant
    /// changed and the claim's time renewed, so exactly one wins.
    public func takeOverAdminEvent(id: Int64, from claimant: String, node: String, claimedBefore cutoffMicros: Int64, atMicros: Int64) async throws -> Bool {
        try await write { connection in
            let rows = try await connection.query(
                """
                UPDATE admin_events SET audited_by = \(node), claimed_at_us = \(atMicros)
                WHERE id = \(id) AND audited_by = \(claimant) AND audited_at_us IS NULL AND COALESCE(claimed_at_us, time_us) < \(cutoffMicros)
                RETURNING id
                """, logger: logger)
            for try await _ in rows.decode(Int64.self) { return true }
            return false
        }
    }

    /// The events `node` claimed and has not finished, oldest first.
    public func unfinishedAdminEvents(claimedBy node: String) async throws -> [StoredAdminEvent] {
        try await read { connection in
            try await PostgresStore.storedEvents(
                connection, logger,
                "SELECT id, time_us, actor, action, detail FROM admin_events WHERE audited_by = \(node) AND audited_at_us IS NULL ORDER BY id")
        }
    }

    /// Marks `node`'s claimed event as recorded.
    public func finishAdminEvent(id: Int64, node: String, atMicros: Int64) async throws {
        try await write { connection in
            _ = try await connection.query(
                "UPDATE admin_events SET audited_at_us = \(atMicros) WHERE id = \(id) AND audited_by = \(node)", logger: logger)
        }
    }

    static func storedEvents(_ connection: PostgresConnection, _ logger: Logger, _ query: PostgresQuery) async throws -> [StoredAdminEvent] {
        var events: [StoredAdminEvent] = []
        for try await (id, time, actor, action, detail) in try await connection.query(query, logger: logger).decode(
            (Int64, Int64, String, String, String).self)
        {
            events.append(StoredAdminEvent(id: id, event: AdminEvent(timeMicros: time, actor: actor, action: action, detail: detail)))
        }
        return events
    }
}
