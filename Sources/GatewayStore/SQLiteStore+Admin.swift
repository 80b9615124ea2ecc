import Foundation
import GatewayCore
import GRDB

extension SQLiteStore: AdminAccountStore, MerchantPaging {
    /// Every admin account, by name.
    public func adminAccounts() async throws -> [AdminAccount] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM admin_accounts ORDER BY name").map(SQLiteStore.adminAccount)
        }
    }

    /// The account whose token has this id, through the unique index.
    public func adminAccount(tokenID: String) async throws -> AdminAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM admin_accounts WHERE token_id = ?", arguments: [tokenID]).map(SQLiteStore.adminAccount)
        }
    }

    /// The account holding this client certificate, through its unique index.
    public func adminAccount(certificateFingerprint: String) async throws -> AdminAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM admin_accounts WHERE certificate_fingerprint = ?", arguments: [certificateFingerprint])
                .map(SQLiteStore.adminAccount)
        }
    }

    /// Inserts an account; a name or a certificate already taken fails on its unique index.
    public func insertAdminAccount(_ account: AdminAccount) async throws {
        try await change { db in
            try db.execute(
                sql: "INSERT INTO admin_accounts (name, role, token_id, token_hash, created_at_us, certificate_fingerprint) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [
                    account.name, account.role.rawValue, account.tokenID, account.tokenHash, account.createdMicros, account.certificateFingerprint,
                ])
        }
    }

    /// Deletes an account; false when it did not exist.
    public func deleteAdminAccount(name: String) async throws -> Bool {
        try await change { db in
            try db.execute(sql: "DELETE FROM admin_accounts WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    /// A page of merchants in id order, through the primary key; a search scans the ids and accounts after the
    /// cursor (100,000 rows in a few milliseconds) and stops at the page's end.
    public func merchantPage(after: String?, matching: String?, limit: Int) async throws -> [MerchantRecord] {
        try await pool.read { db in
            var sql = "SELECT \(SQLiteStore.merchantColumns) FROM merchants WHERE id > ?"
            var arguments: StatementArguments = [after ?? ""]
            if let matching {
                let pattern = SQLiteStore.containsPattern(matching)
                sql += " AND (lower(id) LIKE ? ESCAPE '\\' OR lower(account) LIKE ? ESCAPE '\\')"
                arguments += [pattern, pattern]
            }
            sql += " ORDER BY id LIMIT ?"
            arguments += [limit]
            return try SQLiteStore.merchants(try Row.fetchCursor(db, sql: sql, arguments: arguments))
        }
    }

    /// Updates the row only where every column still holds `current`'s value, bumping the generation when it did.
    /// The id is set to itself so that both records bind through the one `arguments(_:)`.
    public func replaceMerchant(_ current: MerchantRecord, with next: MerchantRecord) async throws -> Bool {
        try await change { db in
            try db.execute(
                sql: """
                    UPDATE merchants SET id = ?, partner_id = ?, account = ?, groups = ?, status = ?, api_key_id = ?, api_key_version = ?, release = ?
                    WHERE id = ? AND partner_id = ? AND account = ? AND groups = ? AND status = ? AND api_key_id IS ? AND api_key_version IS ?
                        AND release IS ?
                    """,
                arguments: SQLiteStore.arguments(next) + SQLiteStore.arguments(current))
            guard db.changesCount > 0 else { return false }
            try SQLiteStore.bumpGeneration(db)
            return true
        }
    }

    static func adminAccount(_ row: Row) throws -> AdminAccount {
        let name: String = row["name"]
        guard let role = AdminRole(rawValue: row["role"]) else { throw StoreError("admin account \(name): unknown role in the store") }
        return AdminAccount(
            name: name, role: role, tokenID: row["token_id"], tokenHash: row["token_hash"], createdMicros: row["created_at_us"],
            certificateFingerprint: row["certificate_fingerprint"])
    }
}

extension SQLiteStore: AdminEventAuditing {
    /// Up to `limit` events no node has claimed, oldest first, through the index of unfinished events.
    public func unclaimedAdminEvents(limit: Int) async throws -> [StoredAdminEvent] {
        try await pool.read { db in
            try SQLiteStore.storedEvents(db, where: "audited_by IS NULL AND audited_at_us IS NULL", arguments: [], limit: limit)
        }
    }

    /// Claims an event for `node`: the conditional `UPDATE` lets exactly one of several claimants win.
    public func claimAdminEvent(id: Int64, node: String, atMicros: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE admin_events SET audited_by = ?, claimed_at_us = ? WHERE id = ? AND audited_by IS NULL", arguments: [node, atMicros, id])
            return db.changesCount == 1
        }
    }

    /// Other nodes' claims older than `cutoffMicros`, through the index of unfinished events.
    public func staleAdminEventClaims(claimedBefore cutoffMicros: Int64, excluding node: String, limit: Int) async throws -> [StoredAdminEvent] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, time_us, actor, action, detail, audited_by FROM admin_events
                    WHERE audited_at_us IS NULL AND audited_by IS NOT NULL AND audited_by <> ? AND \(SQLiteStore.claimedBefore)
                    ORDER BY id LIMIT ?
                    """, arguments: [node, cutoffMicros, limit]
            ).map {
                StoredAdminEvent(id: $0[0], event: AdminEvent(timeMicros: $0[1], actor: $0[2], action: $0[3], detail: $0[4]), claimedBy: $0[5])
            }
        }
    }

    /// Takes over a stale claim: the `UPDATE` names the claimant and the bound, so of several nodes taking it over at
    /// once exactly one changes the row, and a claim renewed or finished meanwhile is left alone.
    public func takeOverAdminEvent(id: Int64, from claimant: String, node: String, claimedBefore cutoffMicros: Int64, atMicros: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE admin_events SET audited_by = ?, claimed_at_us = ?
                    WHERE id = ? AND audited_by = ? AND audited_at_us IS NULL AND \(SQLiteStore.claimedBefore)
                    """, arguments: [node, atMicros, id, claimant, cutoffMicros])
            return db.changesCount == 1
        }
    }

    /// A claim's time, or for one made before schema version 9 recorded it, its event's (a claim comes after its event).
    static let claimedBefore = "COALESCE(claimed_at_us, time_us) < ?"

    /// The events `node` claimed and has not finished, oldest first.
    public func unfinishedAdminEvents(claimedBy node: String) async throws -> [StoredAdminEvent] {
        try await pool.read { db in
            try SQLiteStore.storedEvents(db, where: "audited_by = ? AND audited_at_us IS NULL", arguments: [node], limit: nil)
        }
    }

    /// Marks `node`'s claimed event as recorded.
    public func finishAdminEvent(id: Int64, node: String, atMicros: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE admin_events SET audited_at_us = ? WHERE id = ? AND audited_by = ?", arguments: [atMicros, id, node])
        }
    }

    static func storedEvents(_ db: Database, where condition: String, arguments: StatementArguments, limit: Int?) throws -> [StoredAdminEvent] {
        var sql = "SELECT id, time_us, actor, action, detail FROM admin_events WHERE \(condition) ORDER BY id"
        var arguments = arguments
        if let limit {
            sql += " LIMIT ?"
            arguments += [limit]
        }
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map {
            StoredAdminEvent(id: $0[0], event: AdminEvent(timeMicros: $0[1], actor: $0[2], action: $0[3], detail: $0[4]))
        }
    }
}
