import GRDB

/// One recorded value: the trail only holds text and integers, so encodings stay trivially deterministic.
enum AuditFieldValue: Sendable, Equatable {
    case text(String?)
    case integer(Int64?)

    var databaseValue: DatabaseValue {
        switch self {
        case .text(let value): value?.databaseValue ?? .null
        case .integer(let value): value?.databaseValue ?? .null
        }
    }
}

/// Receives an entry's chained fields in canonical order (`AuditEntry.visitFieldsAfterSeq`).
protocol AuditFieldVisitor {
    mutating func text(_ value: String?)
    mutating func integer(_ value: Int64?)
}

/// Collects the fields as values, for readers (export) that are not on the hot path.
private struct AuditFieldCollector: AuditFieldVisitor {
    var values: [AuditFieldValue] = []
    mutating func text(_ value: String?) { values.append(.text(value)) }
    mutating func integer(_ value: Int64?) { values.append(.integer(value)) }
}

extension AuditEntry {
    /// Column names (also JSON keys and CSV headers) of the chained fields, in canonical order.
    ///
    /// Order is part of the `v1` canonical encoding: never reorder, only append under a new version.
    public static let fieldNames: [String] = [
        "seq", "node_id", "time_us", "phase", "request_id",
        "caller_id", "auth_method", "caller_cert_fingerprint", "client_address",
        "merchant_id", "partner_id", "account", "environment",
        "operation_id", "operation_family", "operation_template",
        "method", "path", "release", "idempotency_key", "correlation_id",
        "request_sha256", "request_bytes",
        "status", "gateway_error_code", "klarna_error_code", "klarna_error_id",
        "response_sha256", "response_bytes",
        "upstream_attempts", "upstream_latency_us",
        "credential_id", "credential_version", "upstream_cert_fingerprint",
    ]

    /// The chained fields' values, in `fieldNames` order.
    var fieldValues: [AuditFieldValue] {
        var collector = AuditFieldCollector()
        collector.values.reserveCapacity(Self.fieldNames.count)
        collector.integer(seq)
        visitFieldsAfterSeq(&collector)
        return collector.values
    }

    /// Hands every chained field after `seq` to `visitor`, in `fieldNames` order: the one place that order is
    /// spelled out for writing, so the canonical bytes, the SQLite binding and the PostgreSQL columns cannot
    /// disagree, and none of them needs an array of boxed values per record.
    @inline(__always)
    func visitFieldsAfterSeq<Visitor: AuditFieldVisitor>(_ visitor: inout Visitor) {
        visitor.text(nodeID)
        visitor.integer(timeMicros)
        visitor.text(phase)
        visitor.text(requestID)
        visitor.text(callerID)
        visitor.text(authMethod)
        visitor.text(callerCertificateFingerprint)
        visitor.text(clientAddress)
        visitor.text(merchantID)
        visitor.text(partnerID)
        visitor.text(account)
        visitor.text(environment)
        visitor.text(operationID)
        visitor.text(operationFamily)
        visitor.text(operationTemplate)
        visitor.text(method)
        visitor.text(path)
        visitor.text(release)
        visitor.text(idempotencyKey)
        visitor.text(correlationID)
        visitor.text(requestSHA256)
        visitor.integer(requestBytes)
        visitor.integer(status)
        visitor.text(gatewayErrorCode)
        visitor.text(klarnaErrorCode)
        visitor.text(klarnaErrorID)
        visitor.text(responseSHA256)
        visitor.integer(responseBytes)
        visitor.integer(upstreamAttempts)
        visitor.integer(upstreamLatencyMicros)
        visitor.text(credentialID)
        visitor.integer(credentialVersion)
        visitor.text(upstreamCertificateFingerprint)
    }

    /// The stored columns after the chained fields: the chain, and which encoding it covers.
    static let chainColumns = ["prev_hash", "hash", "canonical_version"]

    /// The columns `init(row:)` reads, by position: `SELECT \(selectColumns) FROM audit_records`.
    static let selectColumns = (fieldNames + chainColumns).joined(separator: ",")

    /// `selectColumns` with `canonical_version` given by an expression (a trail from before the column).
    static func selectColumns(version: String) -> String {
        (fieldNames + chainColumns.map { $0 == "canonical_version" ? "\(version) AS \($0)" : $0 }).joined(separator: ",")
    }

    /// Reads a row selected with `selectColumns`, by position (name lookups dominate the cost of a 10-million-row
    /// export), as stored and without judging it (the verifier does that).
    init(row: Row) {
        self.init(
            seq: row[0], nodeID: row[1] ?? "", timeMicros: row[2] ?? 0, phase: row[3] ?? "", requestID: row[4] ?? "",
            method: row[16] ?? "", path: row[17] ?? "", upstreamAttempts: row[29] ?? 0, prevHash: row[34] ?? "", hash: row[35] ?? "",
            canonicalVersion: row[36] ?? AuditCanonical.textVersion
        )
        callerID = row[5]
        authMethod = row[6]
        callerCertificateFingerprint = row[7]
        clientAddress = row[8]
        merchantID = row[9]
        partnerID = row[10]
        account = row[11]
        environment = row[12]
        operationID = row[13]
        operationFamily = row[14]
        operationTemplate = row[15]
        release = row[18]
        idempotencyKey = row[19]
        correlationID = row[20]
        requestSHA256 = row[21]
        requestBytes = row[22]
        status = row[23]
        gatewayErrorCode = row[24]
        klarnaErrorCode = row[25]
        klarnaErrorID = row[26]
        responseSHA256 = row[27]
        responseBytes = row[28]
        upstreamLatencyMicros = row[30]
        credentialID = row[31]
        credentialVersion = row[32]
        upstreamCertificateFingerprint = row[33]
    }

    /// Reads a row by column names, whatever their order (archive lines parsed into a row).
    init(namedRow row: Row) {
        self.init(
            seq: row["seq"], nodeID: row["node_id"] ?? "", timeMicros: row["time_us"] ?? 0, phase: row["phase"] ?? "",
            requestID: row["request_id"] ?? "", method: row["method"] ?? "", path: row["path"] ?? "",
            upstreamAttempts: row["upstream_attempts"] ?? 0, prevHash: row["prev_hash"] ?? "", hash: row["hash"] ?? "",
            // An export line names it `v`, first; a line from before versions were stored is `v1`.
            canonicalVersion: row["canonical_version"] ?? row["v"] ?? AuditCanonical.textVersion
        )
        callerID = row["caller_id"]
        authMethod = row["auth_method"]
        callerCertificateFingerprint = row["caller_cert_fingerprint"]
        clientAddress = row["client_address"]
        merchantID = row["merchant_id"]
        partnerID = row["partner_id"]
        account = row["account"]
        environment = row["environment"]
        operationID = row["operation_id"]
        operationFamily = row["operation_family"]
        operationTemplate = row["operation_template"]
        release = row["release"]
        idempotencyKey = row["idempotency_key"]
        correlationID = row["correlation_id"]
        requestSHA256 = row["request_sha256"]
        requestBytes = row["request_bytes"]
        status = row["status"]
        gatewayErrorCode = row["gateway_error_code"]
        klarnaErrorCode = row["klarna_error_code"]
        klarnaErrorID = row["klarna_error_id"]
        responseSHA256 = row["response_sha256"]
        responseBytes = row["response_bytes"]
        upstreamLatencyMicros = row["upstream_latency_us"]
        credentialID = row["credential_id"]
        credentialVersion = row["credential_version"]
        upstreamCertificateFingerprint = row["upstream_cert_fingerprint"]
    }

    /// A bare entry; the remaining fields start empty.
    init(
        seq: Int64, nodeID: String, timeMicros: Int64, phase: String, requestID: String, method: String, path: String,
        upstreamAttempts: Int64, prevHash: String, hash: String, canonicalVersion: Int64
    ) {
        self.canonicalVersion = canonicalVersion
        self.seq = seq
        self.nodeID = nodeID
        self.timeMicros = timeMicros
        self.phase = phase
        self.requestID = requestID
        self.method = method
        self.path = path
        self.upstreamAttempts = upstreamAttempts
        self.prevHash = prevHash
        self.hash = hash
    }

    static let insertSQL: String = {
        let columns = fieldNames + chainColumns
        let marks = Array(repeating: "?", count: columns.count).joined(separator: ",")
        return "INSERT INTO audit_records (\(columns.joined(separator: ","))) VALUES (\(marks))"
    }()

    var insertArguments: StatementArguments {
        StatementArguments(fieldValues.map(\.databaseValue) + [prevHash.databaseValue, hash.databaseValue, canonicalVersion.databaseValue])
    }
}
