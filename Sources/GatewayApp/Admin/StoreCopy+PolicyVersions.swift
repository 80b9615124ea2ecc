import GatewayCore

extension StoreCopy {
    /// Copies every policy version, oldest first so that ids keep their order (the newest stays in force), and reads
    /// them back; returns how many. A destination that cannot hold them is refused only when there are some.
    static func copyPolicyVersions(from source: any GatewayStore, to destination: any GatewayStore) async throws -> Int {
        guard let versions = source as? any PolicyVersionStore else { return 0 }
        var copied = 0
        for kind in StoredPolicyKind.allCases {
            let rows = Array(try await versions.policyVersions(kind, before: nil, limit: Int.max).reversed())
            guard !rows.isEmpty else { continue }
            guard let target = destination as? any PolicyVersionStore else {
                throw AdminError("the destination store cannot hold policy versions, and the source has some")
            }
            var newest: Int64?
            for row in rows {
                guard let stored = try await target.appendPolicyVersion(row, expectingNewest: newest) else {
                    throw AdminError("the destination's \(kind.rawValue) policy versions changed during the copy")
                }
                newest = stored.id
            }
            let back = try await target.policyVersions(kind, before: nil, limit: Int.max).reversed().map { row in
                PolicyVersion(kind: row.kind, version: row.version, yaml: row.yaml, appliedBy: row.appliedBy, appliedAtMicros: row.appliedAtMicros, comment: row.comment)
            }
            let expected = rows.map { row in
                PolicyVersion(kind: row.kind, version: row.version, yaml: row.yaml, appliedBy: row.appliedBy, appliedAtMicros: row.appliedAtMicros, comment: row.comment)
            }
            guard back == expected else {
                throw AdminError("the copy does not match its source: \(kind.rawValue) policy versions: \(rows.count) in the source, \(back.count) in the destination")
            }
            copied += rows.count
        }
        return copied
    }

    /// Whether the destination already holds policy versions (then it is not empty).
    static func holdsPolicyVersions(_ store: any GatewayStore) async throws -> Bool {
        guard let versions = store as? any PolicyVersionStore else { return false }
        for kind in StoredPolicyKind.allCases where try await !versions.policyVersions(kind, before: nil, limit: 1).isEmpty { return true }
        return false
    }
}
