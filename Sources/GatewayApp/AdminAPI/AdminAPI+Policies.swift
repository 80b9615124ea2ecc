import Foundation
import GatewayCore
import GatewayPolicy

/// The access and rate-limit policies as resources: read the one in force, validate a proposed one. Applying is not
/// offered: policies are files each instance reads from its own disk (docs/admin-api.md, "Policies").
extension AdminAPI.Exchange {
    /// A policy file the API can read and check: `access` (`policies/access.yaml`) or `rate-limits`.
    enum PolicyKind: String {
        case access
        case rateLimits = "rate-limits"
    }

    /// `GET /admin/v1/policies/{access,rate-limits}`: the policy in this instance's snapshot, in the file's shape,
    /// with its version (also the `ETag`).
    func policy(_ kind: PolicyKind) throws -> AdminResponse {
        let snapshot = api.runtime.snapshots.current
        let policy = try Self.policyJSON(kind, snapshot: snapshot)
        return AdminResponse(
            .ok,
            json: .object([("kind", .string(kind.rawValue)), ("version", .string(policy.version)), ("snapshot", .int(Int(snapshot.version))), ("policy", policy.json)]),
            requestID: requestID, etag: policy.version)
    }

    /// `POST /admin/v1/policies/{access,rate-limits}/validate` with `{"yaml": "…"}`: the text parsed and checked
    /// exactly as a reload checks the file (`PolicyLoader`, against the catalogue in force), nothing applied. A policy
    /// with problems is a 400 naming every one; a valid one is answered as it would be read, with its version,
    /// whether it differs from the one in force, and warnings (ids that name nothing in the store).
    func validatePolicy(_ kind: PolicyKind) async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: ["yaml"], shape: "{\"yaml\": \"the policy file's text\"}")
        let yaml = try body.requiredString("yaml", maxLength: 60_000)
        let snapshot = api.runtime.snapshots.current
        let source = "proposed \(kind.rawValue) policy"
        let proposed: JSONValue
        let warnings: [String]
        do {
            switch kind {
            case .access:
                let policy = try PolicyLoader.access(yaml: yaml, source: source, catalogue: snapshot.catalogue)
                proposed = try Self.json(policy)
                let callers = Set(try await api.service.listCallers().map(\.id))
                warnings = policy.callers.keys.filter { !callers.contains($0) }.sorted().map { "callers.\($0): no caller with this id in the store" }
            case .rateLimits:
                let policy = try PolicyLoader.rateLimits(yaml: yaml, source: source, catalogue: snapshot.catalogue)
                proposed = try Self.json(policy)
                let partners = Set(try await api.service.store.partners().map(\.id))
                let callers = Set(try await api.service.listCallers().map(\.id))
                warnings = policy.overridesNamingNone(partners: partners, callers: callers).map { "\($0): names no partner or caller in the store" }
            }
        } catch let error as ConfigError {
            throw GatewayError(.badRequest, Self.bounded("the \(kind.rawValue) policy is not valid: \(error.reason)"))
        }
        let current = try Self.policyJSON(kind, snapshot: snapshot)
        let version = Self.version(proposed)
        return AdminResponse(
            .ok,
            json: .object([
                ("kind", .string(kind.rawValue)), ("valid", .bool(true)), ("version", .string(version)),
                ("current_version", .string(current.version)), ("changed", .bool(version != current.version)),
                ("warnings", .array(warnings.map(JSONValue.string))), ("policy", proposed),
            ]),
            requestID: requestID)
    }

    /// The policy of `kind` in `snapshot`, as JSON, and its version.
    private static func policyJSON(_ kind: PolicyKind, snapshot: GatewaySnapshot) throws -> (json: JSONValue, version: String) {
        let json = try kind == .access ? json(snapshot.access) : json(snapshot.rateLimits)
        return (json, version(json))
    }

    /// A policy in the file's shape; keys sorted, so equal policies encode to equal text.
    private static func json(_ policy: some Encodable) throws -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try JSONValue.parse(Array(try encoder.encode(policy)))
    }

    /// A policy's version: a hash of its sorted encoding, quoted as an entity tag.
    private static func version(_ json: JSONValue) -> String { EntityTag.hashing("policy\u{1E}" + json.text) }

    /// A message short enough for an error answer: a file with hundreds of problems names the first ones.
    private static func bounded(_ message: String) -> String { message.count > 4_000 ? String(message.prefix(4_000)) + "…" : message }
}
