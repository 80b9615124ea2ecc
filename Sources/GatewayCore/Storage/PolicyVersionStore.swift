/// A policy the store can hold versions of, by its name in the store (`policy_versions.kind`) and the config file.
public enum StoredPolicyKind: String, Sendable, CaseIterable {
    /// `policies.access`: which caller may call which operation families.
    case access
    /// `policies.rate_limits`: the limiter's rules.
    case rateLimits = "rate_limits"
}

/// One row of a policy's history. The newest row of a kind decides what is in force: its text, or the config's file
/// when it is a return to the file (no text). Rows are only ever appended, so the history is the whole story.
public struct PolicyVersion: Sendable, Hashable {
    /// The row's id: later rows have larger ids; 0 before the store assigned one.
    public var id: Int64
    /// Which policy.
    public var kind: StoredPolicyKind
    /// The policy's version as the admin API computes it (its `ETag`); nil for a return to the file.
    public var version: String?
    /// The policy file's text; nil for a return to the file.
    public var yaml: String?
    /// Who applied it: `admin:NAME` through the API, the operating-system user through the CLI.
    public var appliedBy: String
    /// When, in microseconds since the Unix epoch, UTC.
    public var appliedAtMicros: Int64
    /// Why, in the applier's words (`rollback of "…"` for a rollback); nil when none was given.
    public var comment: String?

    /// Makes a row.
    public init(
        id: Int64 = 0, kind: StoredPolicyKind, version: String?, yaml: String?, appliedBy: String, appliedAtMicros: Int64, comment: String? = nil
    ) {
        self.id = id
        self.kind = kind
        self.version = version
        self.yaml = yaml
        self.appliedBy = appliedBy
        self.appliedAtMicros = appliedAtMicros
        self.comment = comment
    }

    /// True for a row that hands the policy back to the config's file.
    public var returnsToFile: Bool { yaml == nil }
}

/// Access and rate-limit policies' versions in the gateway's store (SQLite or PostgreSQL), written by the admin
/// API and `klarna-gateway policies`. An append bumps the generation, so every instance rebuilds its snapshot.
public protocol PolicyVersionStore: Sendable {
    /// Up to `limit` rows of `kind` with ids below `before` (all when nil), newest first.
    func policyVersions(_ kind: StoredPolicyKind, before: Int64?, limit: Int) async throws -> [PolicyVersion]
    /// Appends `version` (its id is ignored) if the newest row of its kind still has id `newest` (nil: there is none):
    /// a compare-and-set, so two admins applying at once cannot both win. Returns the stored row, nil when it lost.
    func appendPolicyVersion(_ version: PolicyVersion, expectingNewest newest: Int64?) async throws -> PolicyVersion?
}
