import GatewayAudit
import GatewayCore
import NIOPosix

extension AdminAPI.Exchange {
    /// The filters of `GET /admin/v1/audit/records`, by query parameter; `audit export` has the same ones.
    private static let auditFilters: [(name: String, set: @Sendable (inout AuditFilter, String) -> Void)] = [
        ("request_id", { $0.requestID = $1 }), ("merchant", { $0.merchantID = $1 }), ("caller", { $0.callerID = $1 }),
        ("error_code", { $0.gatewayErrorCode = $1 }),
    ]

    /// A page of audit records, oldest first as `audit export` writes them: filters `request_id`, `merchant`,
    /// `caller`, `error_code`, `from` (inclusive) and `to` (exclusive); `limit` 1–500 (50), `after` the previous
    /// page's `next_cursor`. Read with `AuditReader`, the code `audit export` uses.
    func listAuditRecords() async throws -> AdminResponse {
        let (trail, filter, after, limit) = try auditQuery()
        // The reader blocks on its store (a file, or a PostgreSQL connection of its own): off the cooperative pool.
        let page = try await NIOThreadPool.singleton.runIfActive {
            try AuditReader.page(path: trail.store, filter: filter, after: after, limit: limit)
        }
        return AdminResponse(
            .ok, json: .object([("records", try Self.auditRecords(page.entries)), ("next_cursor", page.next.map { .string($0.text) } ?? .null)]),
            requestID: requestID)
    }

    /// The records after `after` (a cursor of this or of `audit/records`), or without it the newest `limit`, with
    /// the same filters: `next_cursor` is where the next call resumes, also when nothing new was there (the cursor
    /// sent comes back), so a client following the trail calls again with it; null only when nothing matched yet.
    func tailAuditRecords() async throws -> AdminResponse {
        let (trail, filter, after, limit) = try auditQuery()
        let (entries, more) = try await NIOThreadPool.singleton.runIfActive {
            guard let after else { return (try AuditReader.latest(path: trail.store, filter: filter, limit: limit), false) }
            let page = try AuditReader.page(path: trail.store, filter: filter, after: after, limit: limit)
            return (page.entries, page.next != nil)
        }
        let next = entries.last.map(AuditCursor.init(after:)) ?? after
        return AdminResponse(
            .ok,
            json: .object([
                ("records", try Self.auditRecords(entries)), ("next_cursor", next.map { .string($0.text) } ?? .null), ("more", .bool(more)),
            ]),
            requestID: requestID)
    }

    /// The trail and the query both audit reads take: filters, `after` and `limit`.
    private func auditQuery() throws -> (trail: AdminAuditTrail, filter: AuditFilter, after: AuditCursor?, limit: Int) {
        guard let trail = api.audit else { throw GatewayError(.notFound, "the audit trail is disabled (audit.enabled: false)") }
        let query = request.query
        var filter = AuditFilter()
        for (name, set) in Self.auditFilters {
            guard let value = query[name], !value.isEmpty else { continue }
            guard value.count <= 200 else { throw GatewayError(.badRequest, "\(name) has at most 200 characters") }
            set(&filter, value)
        }
        for (name, bound) in [("from", \AuditFilter.sinceMicros), ("to", \AuditFilter.untilMicros)] {
            guard let text = query[name] else { continue }
            guard text.count <= 64, let micros = AuditFilter.micros(text) else {
                throw GatewayError(.badRequest, "\(name) is an ISO 8601 date-time (2026-12-05T03:00:00Z) or date (2026-12-05)")
            }
            filter[keyPath: bound] = micros
        }
        let limit = try pageLimit()
        var cursor: AuditCursor?
        if let text = query["after"] {
            guard text.count <= 200, let parsed = AuditCursor(text: text) else { throw GatewayError(.badRequest, "after is a previous page's next_cursor") }
            cursor = parsed
        }
        return (trail, filter, cursor, limit)
    }

    /// Each record exactly as `audit export --format jsonl` writes it (the canonical fields, `prev_hash`, `hash`).
    private static func auditRecords(_ entries: [AuditEntry]) throws -> JSONValue {
        .array(try entries.map { try JSONValue.parse(AuditExportFormat.jsonl.line(for: $0)) })
    }
}
