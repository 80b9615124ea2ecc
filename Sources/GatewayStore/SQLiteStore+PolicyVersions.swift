import Foundation
import GatewayCore
import GRDB

extension SQLiteStore: PolicyVersionStore {
    /// Up to `limit` rows of `kind` below `before`, newest first, through the `(kind, id)` index.
    public func policyVersions(_ kind: StoredPolicyKind, before: Int64?, limit: Int) async throws -> [PolicyVersion] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT \(SQLiteStore.policyColumns) FROM policy_versions WHERE kind = ? AND id < ? ORDER BY id DESC LIMIT ?",
                arguments: [kind.rawValue, before ?? Int64.max, limit]
            ).map(SQLiteStore.policyVersion)
        }
    }

    /// Appends a row if the newest of its kind is still `newest`; SQLite's single writer makes the check and the
    /// insert one step. The generation bump has every gateway rebuild its snapshot from the new row.
    public func appendPolicyVersion(_ version: PolicyVersion, expectingNewest newest: Int64?) async throws -> PolicyVersion? {
        try await change { db in
            let current = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM policy_versions WHERE kind = ?", arguments: [version.kind.rawValue])
            guard current == newest else { return nil }
            try db.execute(
                sql: "INSERT INTO policy_versions (kind, version, yaml, applied_by, applied_at_us, comment) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [version.kind.rawValue, version.version, version.yaml, version.appliedBy, version.appliedAtMicros, version.comment])
            var stored = version
            stored.id = db.lastInsertedRowID
            try SQLiteStore.bumpGeneration(db)
            return stored
        }
    }

    /// The newest row of each kind that has one, for the snapshot.
    static func newestPolicyVersions(_ db: Database) throws -> [PolicyVersion] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT \(policyColumns) FROM policy_versions
                WHERE id IN (SELECT MAX(id) FROM policy_versions GROUP BY kind) ORDER BY kind
                """
        ).map(policyVersion)
    }

    /// The columns `policyVersion` decodes, in its order.
    static let policyColumns = "id, kind, version, yaml, applied_by, applied_at_us, comment"

    static func policyVersion(_ row: Row) throws -> PolicyVersion {
        guard let kind = StoredPolicyKind(rawValue: row[1]) else { throw StoreError("policy version \(row[0] as Int64): unknown kind in the store") }
        return PolicyVersion(id: row[0], kind: kind, version: row[2], yaml: row[3], appliedBy: row[4], appliedAtMicros: row[5], comment: row[6])
    }
}
