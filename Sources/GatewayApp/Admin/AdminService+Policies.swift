import Foundation
import GatewayCore
import GatewayPolicy

/// A policy's text that parsed and passed every check a reload makes, ready to be stored.
public struct ValidatedPolicy: Sendable {
    /// Which policy.
    public let kind: StoredPolicyKind
    /// The text as given.
    public let yaml: String
    /// The policy in the file's shape, keys sorted.
    public let json: JSONValue
    /// Its version: the admin API's `ETag` of it.
    public let version: String
    /// Ids it names that name nothing in the store (allowed: they apply once one is added).
    public let warnings: [String]
}

extension AdminService {
    /// The store's policy versions, or an error saying this store cannot hold them.
    var policyStore: any PolicyVersionStore {
        get throws {
            guard let versions = store as? any PolicyVersionStore else { throw AdminError("this store cannot hold policy versions") }
            return versions
        }
    }

    /// Parses `yaml` as a `kind` policy and checks it exactly as a reload checks the file (`PolicyLoader`, against
    /// `catalogue`); throws the `ConfigError` naming every problem. Warnings name ids the store does not hold.
    public func validatePolicy(_ kind: StoredPolicyKind, yaml: String, catalogue: OperationCatalogue, source: String) async throws -> ValidatedPolicy {
        // The store is read first, then the text is checked synchronously, in one function for both kinds.
        let callers = Set(try await listCallers().map(\.id))
        let partners = kind == .rateLimits ? Set(try await store.partners().map(\.id)) : []
        let (json, warnings) = try Self.checkedPolicy(kind, yaml: yaml, catalogue: catalogue, source: source, callers: callers, partners: partners)
        return ValidatedPolicy(kind: kind, yaml: yaml, json: json, version: Self.policyVersion(json), warnings: warnings)
    }

    /// `yaml` parsed and checked as a `kind` policy (`PolicyLoader`), in the file's shape, and the ids it names that
    /// `callers` and `partners` (the store's) do not hold: none are named when the sets are not given.
    static func checkedPolicy(
        _ kind: StoredPolicyKind, yaml: String, catalogue: OperationCatalogue, source: String, callers: Set<String>? = nil,
        partners: Set<String> = []
    ) throws -> (json: JSONValue, warnings: [String]) {
        switch kind {
        case .access:
            let policy = try PolicyLoader.access(yaml: yaml, source: source, catalogue: catalogue)
            guard let callers else { return (try policyJSON(policy), []) }
            return (try policyJSON(policy), policy.callers.keys.filter { !callers.contains($0) }.sorted().map { "callers.\($0): no caller with this id in the store" })
        case .rateLimits:
            let policy = try PolicyLoader.rateLimits(yaml: yaml, source: source, catalogue: catalogue)
            guard let callers else { return (try policyJSON(policy), []) }
            return (try policyJSON(policy), policy.overridesNamingNone(partners: partners, callers: callers).map { "\($0): names no partner or caller in the store" })
        }
    }

    /// A policy in the file's shape; keys sorted, so equal policies encode to equal text.
    // Never inlined: inlined into an async function (`validatePolicy`, the API's `currentPolicy`), the release
    // build's compiler (Swift 6.3) crashed splitting that coroutine around the encoder's error handling.
    @inline(never)
    public static func policyJSON(_ policy: some Encodable) throws -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try JSONValue.parse(Array(try encoder.encode(policy)))
    }

    /// A policy's version: a hash of its sorted encoding, quoted as an entity tag, so that texts differing only in
    /// comments or layout have one version.
    public static func policyVersion(_ json: JSONValue) -> String { EntityTag.hashing("policy\u{1E}" + json.text) }

    /// The newest stored row of `kind`, nil when the store holds none (the config's file is in force).
    public func newestPolicyVersion(_ kind: StoredPolicyKind) async throws -> PolicyVersion? {
        try await policyStore.policyVersions(kind, before: nil, limit: 1).first
    }

    /// Up to `limit` rows of `kind` below the id `before`, newest first.
    public func policyHistory(_ kind: StoredPolicyKind, before: Int64? = nil, limit: Int) async throws -> [PolicyVersion] {
        try await policyStore.policyVersions(kind, before: before, limit: limit)
    }

    /// The newest stored row of `kind` with this version and text: what a rollback restores; nil when none.
    public func storedPolicy(_ kind: StoredPolicyKind, version: String) async throws -> PolicyVersion? {
        var before: Int64?
        while true {
            let page = try await policyStore.policyVersions(kind, before: before, limit: 500)
            if let found = page.first(where: { $0.version == version && $0.yaml != nil }) { return found }
            guard page.count == 500, let last = page.last else { return nil }
            before = last.id
        }
    }

    /// Stores `policy` as the newest version of its kind if the newest row is still `newest` (nil: none), with its
    /// change-log event in the same transaction; nil when another change came first. `actor` as for roll-outs.
    public func applyPolicy(
        _ policy: ValidatedPolicy, comment: String?, expectingNewest newest: Int64?, actor: String? = nil
    ) async throws -> PolicyVersion? {
        let row = PolicyVersion(
            kind: policy.kind, version: policy.version, yaml: policy.yaml, appliedBy: actor ?? changeActor ?? "unknown",
            appliedAtMicros: UTCTime.nowMicros(), comment: comment)
        let detail = "\(policy.kind.rawValue) version \(policy.version)\(comment.map { ": \($0)" } ?? "")"
        let store = try policyStore
        return try await changing("policies.apply", detail, actor: actor) { try await store.appendPolicyVersion(row, expectingNewest: newest) }
    }

    /// Stores a return to the config's file for `kind` (a row without text) if the newest row is still `newest`;
    /// nil when another change came first. The history keeps every version, for a later rollback.
    public func returnPolicyToFile(_ kind: StoredPolicyKind, expectingNewest newest: Int64?, actor: String? = nil) async throws -> PolicyVersion? {
        let row = PolicyVersion(kind: kind, version: nil, yaml: nil, appliedBy: actor ?? changeActor ?? "unknown", appliedAtMicros: UTCTime.nowMicros())
        let store = try policyStore
        return try await changing("policies.use-file", kind.rawValue, actor: actor) { try await store.appendPolicyVersion(row, expectingNewest: newest) }
    }
}

extension StoredPolicyKind {
    /// The kind's name in the admin API's paths and the CLI's arguments: `access`, `rate-limits`.
    public var pathName: String { self == .access ? "access" : "rate-limits" }

    /// The kind a path or argument names; nil for anything else.
    public init?(pathName: String) {
        switch pathName {
        case "access": self = .access
        case "rate-limits": self = .rateLimits
        default: return nil
        }
    }
}
