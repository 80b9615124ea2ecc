import GatewayCore

extension AdminAPI.Exchange {
    /// `POST /admin/v1/callers` `{"id":"NAME"[,"certificate_fingerprint":"HEX"]}`: a caller with a new token, shown in
    /// this answer once (the store keeps its hash), as `callers add` prints it once.
    func addCaller() async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: ["id", "certificate_fingerprint"], shape: #"{"id": "NAME", "certificate_fingerprint": "HEX"}"#)
        let id = try body.requiredString("id")
        if let problem = MerchantRecord.problem(withID: id, kind: "caller") { throw GatewayError(.badRequest, problem) }
        let fingerprint = try body.string("certificate_fingerprint", maxLength: 95, nullable: true)
        if let fingerprint, !Self.isFingerprint(fingerprint) {
            throw GatewayError(.badRequest, "certificate_fingerprint is a SHA-256 fingerprint: 64 hex digits, optionally in colon-separated pairs")
        }
        if try await api.service.store.caller(id: id) != nil {
            throw GatewayError(.conflict, "caller '\(id)' already exists; rotate its token with POST /admin/v1/callers/\(id)/rotate-token")
        }
        try await api.recordIntent(self, merchant: nil)
        let added = try await serviceRule { try await api.service.addCaller(id: id, certificateFingerprint: fingerprint) }
        await api.recordOutcome(self, merchant: nil, status: 201)
        return AdminResponse(.created, json: Self.withToken(added.record, added.token), requestID: requestID)
    }

    /// `POST /admin/v1/callers/{name}/rotate-token`: a new token, shown once; the old one stops at the reload that
    /// follows at once. Like `callers rotate-token`, a revoked caller stays revoked.
    func rotateCallerToken(_ id: String) async throws -> AdminResponse {
        guard try await api.service.store.caller(id: id) != nil else { throw GatewayError(.notFound, "no caller with id '\(id)'") }
        try await api.recordIntent(self, merchant: nil)
        let token = try await serviceRule { try await api.service.rotateCallerToken(id: id) }
        await api.recordOutcome(self, merchant: nil, status: 200)
        let record = try await api.service.store.caller(id: id)
        return AdminResponse(.ok, json: Self.withToken(record, token), requestID: requestID)
    }

    /// The one answer that carries a token: the caller and the token to hand over.
    private static func withToken(_ record: CallerRecord?, _ token: CallerToken?) -> JSONValue {
        .object([
            ("caller", record.map(AdminJSON.caller) ?? .null),
            ("token", token.map { .string($0.rendered.exposedValue) } ?? .null),
        ])
    }

    /// 64 hex digits, or 32 colon-separated pairs as `openssl x509 -fingerprint` prints them: the API's shape,
    /// narrower than what `AdminService.normalizedFingerprint` forgives, so the OpenAPI document can state it.
    static func isFingerprint(_ text: String) -> Bool {
        let hex = Set("0123456789abcdefABCDEF".utf8)
        let bytes = Array(text.utf8)
        if bytes.count == 64 { return bytes.allSatisfy(hex.contains) }
        guard bytes.count == 95 else { return false }
        return bytes.enumerated().allSatisfy { index, byte in index % 3 == 2 ? byte == UInt8(ascii: ":") : hex.contains(byte) }
    }
}
