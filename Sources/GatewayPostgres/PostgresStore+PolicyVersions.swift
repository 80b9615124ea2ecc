import Foundation
import GatewayCore
import PostgresNIO

extension PostgresStore: PolicyVersionStore {
    /// Up to `limit` rows of `kind` below `before`, newest first, through the `(kind, id)` index.
    public func policyVersions(_ kind: StoredPolicyKind, before: Int64?, limit: Int) async throws -> [PolicyVersion] {
        try await read { connection in
            try await PostgresStore.fetchPolicyVersions(
                connection, logger,
                """
                SELECT \(unescaped: PostgresStore.policyColumns) FROM policy_versions
                WHERE kind = \(kind.rawValue) AND id < \(before ?? Int64.max) ORDER BY id DESC LIMIT \(limit)
                """)
        }
    }

    /// Appends a row if the newest of its kind is still `newest`. The writers' lock, taken first, serializes every
    /// append (as SQLite's single writer does), so the check and the insert cannot interleave with another's; the
    /// generation bump notifies every instance.
    public func appendPolicyVersion(_ version: PolicyVersion, expectingNewest newest: Int64?) async throws -> PolicyVersion? {
        try await write { connection in
            try await PostgresStore.lockWrites(connection, logger)
            var current: Int64?
            for try await id in try await connection.query(
                "SELECT MAX(id) FROM policy_versions WHERE kind = \(version.kind.rawValue)", logger: logger
            ).decode(Int64?.self) {
                current = id
            }
            guard current == newest else { return nil }
            var stored = version
            for try await id in try await connection.query(
                """
                INSERT INTO policy_versions (kind, version, yaml, applied_by, applied_at_us, comment)
                VALUES (\(version.kind.rawValue), \(version.version), \(version.yaml), \(version.appliedBy), \(version.appliedAtMicros), \(version.comment))
                RETURNING id
                """, logger: logger
            ).decode(Int64.self) {
                stored.id = id
            }
            try await PostgresStore.bumpGeneration(connection, logger)
            return stored
        }
    }

    /// The columns `fetchPolicyVersions` decodes, in its order.
    static let policyColumns = "id, kind, version, yaml, applied_by, applied_at_us, comment"

    static func fetchPolicyVersions(_ connection: PostgresConnection, _ logger: Logger, _ query: PostgresQuery) async throws -> [PolicyVersion] {
        var versions: [PolicyVersion] = []
        let rows = try await connection.query(query, logger: logger)
        for try await (id, kindText, version, yaml, appliedBy, appliedAt, comment) in rows.decode(
            (Int64, String, String?, String?, String, Int64, String?).self)
        {
            guard let kind = StoredPolicyKind(rawValue: kindText) else { throw StoreError("policy version \(id): unknown kind in the store") }
            versions.append(
                PolicyVersion(id: id, kind: kind, version: version, yaml: yaml, appliedBy: appliedBy, appliedAtMicros: appliedAt, comment: comment))
        }
        return versions
    }
}
