import GatewayAudit
import GatewayProxy
import Logging

/// The journals a gateway process records its calls in, wired one way for `serve` and the benchmarks that stand in
/// for it.
public struct CallJournals: Sendable {
    /// What the data plane is given: the audit writer deciding and the access log following, or the access log
    /// alone when the audit trail is off.
    public let journal: any CallJournal
    /// The audit writer, for health and shutdown; nil when the audit trail is off.
    public let audit: AuditWriter?

    /// Opens the audit writer when `config` enables it, signing with the key kept in the credentials' store (one
    /// store, one PostgreSQL pool, per process), and chains the access log after it.
    public static func open(config: GatewayConfig, credentials: CredentialLoader, logger: Logger) async throws -> CallJournals {
        let accessLog = AccessLogJournal(logger: logger)
        guard config.auditEnabled else { return CallJournals(journal: accessLog, audit: nil) }
        let signer = try await AuditSigningKey.loadOrCreate(store: credentials.store, sealer: credentials.sealer)
        let audit = AuditWriter(settings: config.audit, nodeID: config.nodeID, signer: signer, resolve: config.resolve, logger: logger)
        return CallJournals(journal: JournalChain([audit, accessLog]), audit: audit)
    }
}
