import Foundation
import GatewayCore
import GatewayPolicy

/// The access and rate-limit policies as resources: read the one in force, validate a proposed one, apply it as a
/// new stored version (docs/admin-api.md, "Policies"); history and rollback are in `AdminAPI+PolicyVersions.swift`.
extension AdminAPI.Exchange {
    /// The policy a read answers and a change must name in `If-Match`: the newest stored version when the store
    /// holds one with text (what every instance serves once it has reloaded, so an answer never lags this
    /// instance's reload), else this instance's snapshot, built from the config's file.
    struct CurrentPolicy {
        /// The policy in the file's shape.
        let json: JSONValue
        /// Its version, also its `ETag`.
        let version: String
        /// The newest stored row of the kind (text or a return to the file); nil when there is none.
        let newest: PolicyVersion?
        /// The stored row the policy comes from; nil when it comes from the file.
        let stored: PolicyVersion?
    }

    /// `GET /admin/v1/policies/{access,rate-limits}`: the policy in force, in the file's shape, with its version
    /// (also the `ETag`) and where it comes from (`store` or `file`).
    func policy(_ kind: StoredPolicyKind) async throws -> AdminResponse {
        let current = try await currentPolicy(kind)
        return AdminResponse(.ok, json: policyAnswer(kind, current), requestID: requestID, etag: current.version)
    }

    /// `POST /admin/v1/policies/{access,rate-limits}/validate` with `{"yaml": "…"}`: the text parsed and checked
    /// exactly as a reload checks the file (`PolicyLoader`, against the catalogue in force), nothing applied. A policy
    /// with problems is a 400 naming every one; a valid one is answered as it would be read, with its version,
    /// whether it differs from the one in force, and warnings (ids that name nothing in the store).
    func validatePolicy(_ kind: StoredPolicyKind) async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: ["yaml"], shape: "{\"yaml\": \"the policy file's text\"}")
        let proposed = try await validated(kind, yaml: try body.requiredString("yaml", maxLength: 60_000))
        let current = try await currentPolicy(kind)
        return AdminResponse(
            .ok,
            json: .object([
                ("kind", .string(kind.pathName)), ("valid", .bool(true)), ("version", .string(proposed.version)),
                ("current_version", .string(current.version)), ("changed", .bool(proposed.version != current.version)),
                ("warnings", .array(proposed.warnings.map(JSONValue.string))), ("policy", proposed.json),
            ]),
            requestID: requestID)
    }

    /// `PUT /admin/v1/policies/{access,rate-limits}` with `{"yaml": "…"[, "comment": "…"]}` under `If-Match`: the
    /// text validated as `validate` does (400 naming every problem), then stored as the newest version; this
    /// instance reloads at once, the others as they do for any store change.
    func applyPolicy(_ kind: StoredPolicyKind) async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["yaml", "comment"], shape: "{\"yaml\": \"the policy file's text\", \"comment\": \"why (optional)\"}")
        let yaml = try body.requiredString("yaml", maxLength: 60_000)
        let comment = try body.string("comment", maxLength: 500)
        let current = try await matchingPolicy(kind)
        return try await store(try await validated(kind, yaml: yaml), comment: comment, over: current)
    }

    /// The policy in force if `If-Match` names its version: missing 428, malformed 400, stale 412.
    func matchingPolicy(_ kind: StoredPolicyKind) async throws -> CurrentPolicy {
        let current = try await currentPolicy(kind)
        _ = try ifMatch(current.version, of: "\(kind.pathName) policy", readAt: "/admin/v1/policies/\(kind.pathName)")
        return current
    }

    /// Stores `policy` over `current` (intent, write, outcome), or 412 when another change came between the check and
    /// the write; answers as a read of the new version.
    func store(_ policy: ValidatedPolicy, comment: String?, over current: CurrentPolicy) async throws -> AdminResponse {
        let kind = policy.kind
        try await api.recordIntent(self, merchant: nil)
        guard
            let stored = try await serviceRule({
                try await api.service.applyPolicy(policy, comment: comment, expectingNewest: current.newest?.id, actor: "admin:" + account.name)
            })
        else {
            throw Self.stale(try await currentPolicy(kind).version, of: "\(kind.pathName) policy")
        }
        await api.recordOutcome(self, merchant: nil, status: 200)
        let now = CurrentPolicy(json: policy.json, version: policy.version, newest: stored, stored: stored)
        return AdminResponse(
            .ok, json: policyAnswer(kind, now, extra: [("warnings", .array(policy.warnings.map(JSONValue.string)))]), requestID: requestID,
            etag: policy.version)
    }

    /// `yaml` checked as a `kind` policy against the catalogue in force; a policy with problems is a 400 naming them.
    func validated(_ kind: StoredPolicyKind, yaml: String) async throws -> ValidatedPolicy {
        do {
            return try await api.service.validatePolicy(
                kind, yaml: yaml, catalogue: api.runtime.snapshots.current.catalogue, source: "proposed \(kind.pathName) policy")
        } catch let error as ConfigError {
            throw GatewayError(.badRequest, Self.bounded("the \(kind.pathName) policy is not valid: \(error.reason)"))
        }
    }

    /// See `CurrentPolicy`. A stored text the catalogue in force no longer accepts (the reload that read it was
    /// rejected) leaves the snapshot's policy in force, and that is what is answered.
    func currentPolicy(_ kind: StoredPolicyKind) async throws -> CurrentPolicy {
        let snapshot = api.runtime.snapshots.current
        let newest = try await serviceRule { try await api.service.newestPolicyVersion(kind) }
        if let newest, let yaml = newest.yaml, let version = newest.version,
            let json = try? AdminService.checkedPolicy(kind, yaml: yaml, catalogue: snapshot.catalogue, source: "stored \(kind.pathName) policy").json
        {
            return CurrentPolicy(json: json, version: version, newest: newest, stored: newest)
        }
        let json = try kind == .access ? AdminService.policyJSON(snapshot.access) : AdminService.policyJSON(snapshot.rateLimits)
        return CurrentPolicy(json: json, version: AdminService.policyVersion(json), newest: newest, stored: nil)
    }

    /// A read's answer: the kind, version, where it comes from, who stored it and when, the snapshot in force here.
    func policyAnswer(_ kind: StoredPolicyKind, _ current: CurrentPolicy, extra: [(String, JSONValue)] = []) -> JSONValue {
        .object(
            [
                ("kind", .string(kind.pathName)), ("version", .string(current.version)),
                ("source", .string(current.stored == nil ? "file" : "store")),
                ("applied_by", current.stored.map { .string($0.appliedBy) } ?? .null),
                ("applied_at", current.stored.map { .string(UTCTime.timestamp(micros: $0.appliedAtMicros)) } ?? .null),
                ("snapshot", .int(Int(api.runtime.snapshots.current.version))), ("policy", current.json),
            ] + extra)
    }

    /// A message short enough for an error answer: a file with hundreds of problems names the first ones.
    private static func bounded(_ message: String) -> String { message.count > 4_000 ? String(message.prefix(4_000)) + "…" : message }
}
