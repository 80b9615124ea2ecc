import GatewayCore

/// One row of the audit trail: every recorded field of a `CallRecord`, flattened, with its place in the chain.
///
/// The field list is closed on purpose: a new `CallRecord` property is not recorded until it is added here, to
/// the schema and to the canonical encoding (a new encoding version), so nothing leaks into the trail by accident.
public struct AuditEntry: Sendable, Equatable {
    /// Position in the append-only sequence, starting at 1.
    public var seq: Int64
    /// The gateway node that wrote it.
    public var nodeID: String
    /// Microseconds since the Unix epoch, UTC.
    public var timeMicros: Int64
    /// `intent`, `outcome` or `refusal`.
    public var phase: String
    /// Gateway request id.
    public var requestID: String
    /// The authenticated caller.
    public var callerID: String?
    /// `token`, `certificate` or `token+certificate`.
    public var authMethod: String?
    /// Fingerprint of the certificate the caller presented.
    public var callerCertificateFingerprint: String?
    /// The caller's address.
    public var clientAddress: String?
    /// The merchant acted for.
    public var merchantID: String?
    /// The partner whose account is used.
    public var partnerID: String?
    /// The Klarna account.
    public var account: String?
    /// `test` or `live`.
    public var environment: String?
    /// Operation id.
    public var operationID: String?
    /// Operation family.
    public var operationFamily: String?
    /// Operation path template.
    public var operationTemplate: String?
    /// HTTP method.
    public var method: String
    /// Path, query reduced to parameter names.
    public var path: String
    /// Effective Klarna release.
    public var release: String?
    /// `Klarna-Idempotency-Key` as sent upstream.
    public var idempotencyKey: String?
    /// `Partner-Correlation-Id` as sent upstream.
    public var correlationID: String?
    /// Request body SHA-256, hex.
    public var requestSHA256: String?
    /// Request body size.
    public var requestBytes: Int64?
    /// Status returned to the caller.
    public var status: Int64?
    /// The gateway's refusal code.
    public var gatewayErrorCode: String?
    /// Klarna's `error_code`.
    public var klarnaErrorCode: String?
    /// Klarna's `error_id`.
    public var klarnaErrorID: String?
    /// Response body SHA-256, hex.
    public var responseSHA256: String?
    /// Response body size.
    public var responseBytes: Int64?
    /// Upstream attempts made.
    public var upstreamAttempts: Int64
    /// Upstream latency in microseconds.
    public var upstreamLatencyMicros: Int64?
    /// Credential id whose key was sent.
    public var credentialID: String?
    /// That credential's version.
    public var credentialVersion: Int64?
    /// Fingerprint of the client certificate presented to Klarna.
    public var upstreamCertificateFingerprint: String?
    /// Hash of the previous entry (hex), or of the anchor for the first one.
    public var prevHash: String
    /// `SHA-256(prev hash bytes || canonical encoding)`, hex.
    public var hash: String
    /// Which canonical encoding `hash` covers: 1 (JSON text) or 2 (packed bytes); not a chained field.
    public var canonicalVersion: Int64

    /// Flattens a call record; `seq`, `prevHash` and `hash` are filled in by the writer.
    public init(_ record: CallRecord, nodeID: String) {
        seq = 0
        self.nodeID = nodeID
        timeMicros = record.timeMicros
        phase = record.phase.rawValue
        requestID = record.requestID
        callerID = record.facts.callerID
        authMethod = record.facts.authentication?.rawValue
        callerCertificateFingerprint = record.callerCertificateFingerprint
        clientAddress = record.clientAddress
        merchantID = record.facts.merchantID
        partnerID = record.facts.partnerID
        account = record.facts.account
        environment = record.facts.environment?.rawValue
        operationID = record.facts.operation?.id
        operationFamily = record.facts.operation?.family
        operationTemplate = record.facts.operation?.template
        method = record.method
        path = record.path
        release = record.facts.release
        idempotencyKey = record.idempotencyKey
        correlationID = record.correlationID
        requestSHA256 = record.requestBodySHA256
        requestBytes = record.requestBodyBytes.map(Int64.init)
        status = record.status.map(Int64.init)
        gatewayErrorCode = record.gatewayErrorCode
        klarnaErrorCode = record.klarnaErrorCode
        klarnaErrorID = record.klarnaErrorID
        responseSHA256 = record.responseBodySHA256
        responseBytes = record.responseBodyBytes.map(Int64.init)
        upstreamAttempts = Int64(record.upstreamAttempts)
        upstreamLatencyMicros = record.upstreamLatencyMicros
        credentialID = record.credential?.id
        credentialVersion = record.credential.map { Int64($0.version) }
        upstreamCertificateFingerprint = record.upstreamCertificateFingerprint
        prevHash = ""
        hash = ""
        canonicalVersion = AuditChainLinker.version
    }
}
