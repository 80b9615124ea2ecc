import GatewayCore

extension AdminAPI.Exchange {
    /// `PUT /admin/v1/partners/{id}/credentials` under the partner's `If-Match`: a new API key (`api_key`) and/or a new
    /// client certificate with its key (`certificate_pem` and `private_key_pem`), sealed with the master key at once
    /// as `partners rotate-key` and `rotate-cert` seal them. Everything is checked before anything is written; the
    /// answer is the partner by reference (credential ids, versions, the certificate's fingerprint), never a secret.
    func replacePartnerCredentials(_ id: String) async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["api_key", "certificate_pem", "private_key_pem"],
            shape: #"{"api_key": "KEY", "certificate_pem": "PEM", "private_key_pem": "PEM"}"#)
        // Read as secrets at once; a refusal names the field, never its value.
        let apiKey = try body.string("api_key", maxLength: 4096).map(Secret.init)
        let certificatePEM = try body.string("certificate_pem", maxLength: 32_768)
        let privateKey = try body.string("private_key_pem", maxLength: 16_384).map(Secret.init)
        guard apiKey != nil || certificatePEM != nil || privateKey != nil else {
            throw GatewayError(.badRequest, "send api_key, or certificate_pem with private_key_pem, or all three")
        }
        guard (certificatePEM == nil) == (privateKey == nil) else {
            throw GatewayError(.badRequest, "certificate_pem and private_key_pem are sent together")
        }
        guard let current = try await api.service.store.partner(id: id) else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        _ = try ifMatch(AdminJSON.partnerETag(current), of: "partner", readAt: "/admin/v1/partners")
        // The service's own checks, all of them before the first write, so a bad certificate does not leave a new key.
        try serviceRule {
            if let apiKey { try AdminService.checkAPIKey(apiKey, environment: current.environment, owner: "partner '\(id)'") }
            if let certificatePEM, let privateKey {
                let certificate = try ClientCertificate(pem: certificatePEM)
                try certificate.checkValidity()
                try certificate.checkPrivateKey(privateKey)
            }
        }
        try await api.recordIntent(self, merchant: nil)
        try await serviceRule {
            if let apiKey { try await api.service.rotatePartnerKey(id: id, apiKey: apiKey) }
            if let certificatePEM, let privateKey {
                try await api.service.rotatePartnerCertificate(id: id, certificatePEM: certificatePEM, clientKeyPEM: privateKey)
            }
        }
        await api.recordOutcome(self, merchant: nil, status: 200)
        guard let changed = try await api.service.store.partner(id: id) else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        return AdminResponse(.ok, json: AdminJSON.partner(changed), requestID: requestID, etag: AdminJSON.partnerETag(changed))
    }
}
