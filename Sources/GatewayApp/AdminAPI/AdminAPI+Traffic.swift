import GatewayAudit
import GatewayCore
import NIOPosix

extension AdminAPI.Exchange {
    /// The most records one traffic summary reads; past it the answer says `truncated` and covers the oldest part
    /// of the window only, so a busy gateway's console costs a bounded read of its trail.
    static let trafficRecordCap = 20_000

    /// `GET /admin/v1/audit/traffic?minutes=`: calls of the last 1–60 minutes (5 by default) as the audit trail
    /// recorded them. Read from the trail, not from the request path, so the data plane does no work for it, and on
    /// PostgreSQL it covers every instance.
    func traffic() async throws -> AdminResponse {
        guard let trail = api.audit else { throw GatewayError(.notFound, "the audit trail is disabled (audit.enabled: false)") }
        var minutes = 5
        if let text = request.query["minutes"] {
            guard let value = Int(text), (1...60).contains(value) else { throw GatewayError(.badRequest, "minutes is a number from 1 to 60") }
            minutes = value
        }
        let nowMicros = UTCTime.nowMicros()
        let fromMicros = nowMicros - Int64(minutes) * 60_000_000
        // The endpoint's authority, the key the breakers are kept by, so the console can put each host's breaker
        // beside its figures.
        let hosts = Dictionary(
            try await api.service.store.partners().map { partner in
                (partner.id, UpstreamEndpoint(baseURL: partner.baseURL)?.authority ?? partner.baseURL)
            }, uniquingKeysWith: { a, _ in a })
        let store = trail.store
        let cap = Self.trafficRecordCap
        let (entries, truncated) = try await NIOThreadPool.singleton.runIfActive {
            var entries: [AuditEntry] = []
            var cursor: AuditCursor?
            repeat {
                let page = try AuditReader.page(
                    path: store, filter: AuditFilter(sinceMicros: fromMicros, untilMicros: nowMicros), after: cursor, limit: 500)
                entries += page.entries
                cursor = page.next
            } while cursor != nil && entries.count < cap
            return (entries, cursor != nil)
        }
        let summary = TrafficSummary(entries: entries, hosts: hosts, fromMicros: fromMicros, toMicros: nowMicros, truncated: truncated)
        return AdminResponse(.ok, json: summary.json, requestID: requestID)
    }
}
