import GatewayAudit
import GatewayProxy

/// The audit trail is the data plane's deciding journal; the conformance lives in the wiring module so that
/// GatewayAudit does not depend on the data plane.
extension AuditWriter: CallJournal {}
