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
        [
            .integer(seq), .text(nodeID), .integer(timeMicros), .text(phase), .text(requestID),
            .text(callerID), .text(authMethod), .text(callerCertificateFingerprint), .text(clientAddress),
            .text(merchantID), .text(partnerID), .text(account), .text(environment),
            .text(operationID), .text(operationFamily), .text(operationTemplate),
            .text(method), .text(path), .text(release), .text(idempotencyKey), .text(correlationID),
            .text(requestSHA256), .integer(requestBytes),
            .integer(status), .text(gatewayErrorCode), .text(klarnaErrorCode), .text(klarnaErrorID),
            .text(responseSHA256), .integer(responseBytes),
            .integer(upstreamAttempts), .integer(upstreamLatencyMicros),
            .text(credentialID), .integer(credentialVersion), .text(upstreamCertificateFingerprint),
        ]
    }

    /// The columns `init(row:)` reads, by position: `SELECT \(selectColumns) FROM audit_records`.
    static let selectColumns = (fieldNames + ["prev_hash", "hash"]).joined(separator: ",")

    /// Reads a row selected with `selectColumns`, by position (name lookups dominate the cost of a 10-million-row
    /// export), as stored and without judging it (the verifier does that).
    init(row: Row) {
        self.init(
            seq: row[0], nodeID: row[1] ?? "", timeMicros: row[2] ?? 0, phase: row[3] ?? "", requestID: row[4] ?? "",
            method: row[16] ?? "", path: row[17] ?? "", upstreamAttempts: row[29] ?? 0, prevHash: row[34] ?? "", hash: row[35] ?? ""
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
            upstreamAttempts: row["upstream_attempts"] ?? 0, prevHash: row["prev_hash"] ?? "", hash: row["hash"] ?? ""
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
        upstreamAttempts: Int64, prevHash: String, hash: String
    ) {
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
        let columns = fieldNames + ["prev_hash", "hash"]
        let marks = Array(repeating: "?", count: columns.count).joined(separator: ",")
        return "INSERT INTO audit_records (\(columns.joined(separator: ","))) VALUES (\(marks))"
    }()

    /// Values of every chained column but `seq`, bound after it: prepared by the caller, not the writer.
    var valuesAfterSeq: [DatabaseValue] { fieldValues.dropFirst().map(\.databaseValue) }

    var insertArguments: StatementArguments {
        StatementArguments(fieldValues.map(\.databaseValue) + [prevHash.databaseValue, hash.databaseValue])
    }
}
