import GatewayAudit

/// The audit trail as the admin API reads it: where its records are and the writer appending to it.
public struct AdminAuditTrail: Sendable {
    /// The SQLite file or `postgres://` URL the writer appends to, as `audit export` would be given it.
    public let store: String
    /// The writer, for its health.
    public let writer: AuditWriter

    /// Names the trail's store and writer.
    public init(store: String, writer: AuditWriter) {
        self.store = store
        self.writer = writer
    }
}
