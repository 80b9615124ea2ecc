import Foundation
import GatewayCore

/// The stored versions of a policy: its history, a rollback that stores an old text again as the newest version, and
/// a return to the config's file, so that the history only ever grows (docs/admin-api.md, "Policies").
extension AdminAPI.Exchange {
    /// `GET /admin/v1/policies/{access,rate-limits}/history?limit=&before=`: stored versions, newest first, each
    /// with its text (a return to the config's file has none); `next_cursor` is the `before` of the next page.
    func policyHistory(_ kind: StoredPolicyKind) async throws -> AdminResponse {
        var limit = 20
        if let text = request.query["limit"] {
            guard let value = Int(text), (1...100).contains(value) else { throw GatewayError(.badRequest, "limit is a number from 1 to 100") }
            limit = value
        }
        var before: Int64?
        if let text = request.query["before"] {
            guard let value = Int64(text), value > 0 else { throw GatewayError(.badRequest, "before is a positive number: a page's next_cursor") }
            before = value
        }
        let rows = try await serviceRule { try await api.service.policyHistory(kind, before: before, limit: limit + 1) }
        let shown = rows.prefix(limit)
        let next: JSONValue = rows.count > limit ? shown.last.map { .string(String($0.id)) } ?? .null : .null
        return AdminResponse(
            .ok, json: .object([("kind", .string(kind.pathName)), ("versions", .array(shown.map(Self.historyItem))), ("next_cursor", next)]),
            requestID: requestID)
    }

    /// `POST /admin/v1/policies/{access,rate-limits}/rollback` with `{"version": "…"[, "comment": "…"]}` under
    /// `If-Match`: the newest stored text with that version, checked again against the catalogue in force, stored as
    /// the newest version.
    func rollBackPolicy(_ kind: StoredPolicyKind) async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["version", "comment"], shape: "{\"version\": \"a version from the history\", \"comment\": \"why (optional)\"}")
        let version = try body.requiredString("version", maxLength: 40)
        let comment = try body.string("comment", maxLength: 500)
        let current = try await matchingPolicy(kind)
        // The history writes versions as entity tags, quotes and all; the bare hex digits are accepted too.
        let tag = EntityTag.quoted(version)
        guard EntityTag.isWellFormed(tag) else { throw GatewayError(.badRequest, "version is a version from the history (32 hex digits)") }
        guard let old = try await serviceRule({ try await api.service.storedPolicy(kind, version: tag) }), let yaml = old.yaml else {
            throw GatewayError(.notFound, "no stored version \(tag) of the \(kind.pathName) policy (GET /admin/v1/policies/\(kind.pathName)/history)")
        }
        return try await store(try await validated(kind, yaml: yaml), comment: comment ?? "rollback to version \(tag)", over: current)
    }

    /// `DELETE /admin/v1/policies/{access,rate-limits}` under `If-Match`: the config's file is in force again, from
    /// each instance's next reload (a row without text: the stored versions stay in the history, for a rollback); 409
    /// when the file already is. Also when the stored text no longer passes the catalogue, which is when it is needed.
    func returnPolicyToFile(_ kind: StoredPolicyKind) async throws -> AdminResponse {
        let current = try await matchingPolicy(kind)
        guard let newest = current.newest, !newest.returnsToFile else {
            throw GatewayError(.conflict, "the \(kind.pathName) policy already comes from the config's file")
        }
        try await api.recordIntent(self, merchant: nil)
        guard
            let row = try await serviceRule({
                try await api.service.returnPolicyToFile(kind, expectingNewest: newest.id, actor: "admin:" + account.name)
            })
        else {
            throw Self.stale(try await currentPolicy(kind).version, of: "\(kind.pathName) policy")
        }
        await api.recordOutcome(self, merchant: nil, status: 200)
        return AdminResponse(.ok, json: .object([("kind", .string(kind.pathName)), ("returned", Self.historyItem(row))]), requestID: requestID)
    }

    private static func historyItem(_ row: PolicyVersion) -> JSONValue {
        .object([
            ("id", .string(String(row.id))), ("version", row.version.map(JSONValue.string) ?? .null),
            ("source", .string(row.returnsToFile ? "file" : "store")), ("applied_by", .string(row.appliedBy)),
            ("applied_at", .string(UTCTime.timestamp(micros: row.appliedAtMicros))), ("comment", row.comment.map(JSONValue.string) ?? .null),
            ("yaml", row.yaml.map(JSONValue.string) ?? .null),
        ])
    }
}
