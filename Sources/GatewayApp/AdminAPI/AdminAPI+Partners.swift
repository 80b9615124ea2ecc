import GatewayCore

extension AdminAPI.Exchange {
    /// `POST /admin/v1/partners`: a new partner with its API key and client certificate and key, checked and sealed
    /// as `partners add` checks and seals them (id, key prefix of the environment, base URL, certificate valid and
    /// matching its key) before anything is written. The answer is the partner by reference, never a secret.
    func addPartner() async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["id", "environment", "base_url", "auth_form", "api_key", "certificate_pem", "private_key_pem"],
            shape: #"{"id": "ID", "environment": "test", "base_url": "URL", "auth_form": "raw", "api_key": "KEY", "certificate_pem": "PEM", "private_key_pem": "PEM"}"#)
        let id = try body.requiredString("id")
        let environment = try body.requiredString("environment")
        guard let environment = KlarnaEnvironment(rawValue: environment) else { throw GatewayError(.badRequest, "environment is test or live") }
        let authForm = try body.string("auth_form").map { text in
            guard let form = BasicAuthForm(rawValue: text) else { throw GatewayError(.badRequest, "auth_form is raw or empty-user") }
            return form
        }
        // Read as secrets at once; a refusal names the field, never its value.
        let input = NewPartner(
            id: id, environment: environment, apiKey: Secret(try body.requiredString("api_key", maxLength: 4096)),
            certificatePEM: try body.requiredString("certificate_pem", maxLength: 32_768),
            clientKeyPEM: Secret(try body.requiredString("private_key_pem", maxLength: 16_384)),
            baseURL: try body.string("base_url", maxLength: 2048), authForm: authForm ?? .rawKey)
        if let problem = AdminService.idProblem(id, kind: "partner") { throw GatewayError(.badRequest, problem) }
        if try await api.service.store.partner(id: id) != nil { throw GatewayError(.conflict, "partner '\(id)' already exists") }
        // Every check before the intent, so a bad certificate is a refusal, not an intent without an outcome.
        try serviceRule { try AdminService.check(input) }
        try await api.recordIntent(self, merchant: nil, partner: (id, environment))
        let added = try await serviceRule { try await api.service.addPartner(input) }
        await api.recordOutcome(self, merchant: nil, partner: (id, environment), status: 201)
        return AdminResponse(.created, json: AdminJSON.partner(added), requestID: requestID, etag: AdminJSON.partnerETag(added))
    }

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
        try serviceRule { try AdminService.checkCredentials(of: current, apiKey: apiKey, certificatePEM: certificatePEM, clientKeyPEM: privateKey) }
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

    /// `PATCH /admin/v1/partners/{id}` under the partner's `If-Match`: any of `base_url`, `auth_form` and
    /// `default_release` (null removes it), checked by `AdminService.changed` as `partners add` checks a base URL and
    /// `merchants update --release` a release, before the intent, so a bad value is a refusal alone.
    func updatePartner(_ id: String) async throws -> AdminResponse {
        let fields = ["base_url", "auth_form", "default_release"]
        let body = try AdminRequestBody(request.body, allowed: Set(fields), shape: "an object of any of " + fields.joined(separator: ", "))
        guard fields.contains(where: body.has) else { throw GatewayError(.badRequest, "send at least one of " + fields.joined(separator: ", ")) }
        let baseURL = try body.string("base_url", maxLength: 2048)
        let authForm = try body.string("auth_form").map { text in
            guard let form = BasicAuthForm(rawValue: text) else { throw GatewayError(.badRequest, "auth_form is raw or empty-user") }
            return form
        }
        let defaultRelease: String?? = body.has("default_release") ? .some(try body.string("default_release", nullable: true)) : nil
        guard let current = try await api.service.store.partner(id: id) else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        _ = try ifMatch(AdminJSON.partnerETag(current), of: "partner", readAt: "/admin/v1/partners")
        let change = PartnerChange(baseURL: baseURL, authForm: authForm, defaultRelease: defaultRelease)
        let policy = api.releases()
        _ = try serviceRule { try AdminService.changed(current, by: change, policy: policy) }
        let named = (id: id, environment: current.environment)
        try await api.recordIntent(self, merchant: nil, partner: named)
        let changed: PartnerRecord
        do {
            changed = try await serviceRule { try await api.service.updatePartner(id: id, change, policy: policy, unchangedSince: current) }
        } catch AdminService.ConditionalChangeError.stalePartner(let now) {
            throw Self.stale(AdminJSON.partnerETag(now), of: "partner")
        }
        await api.recordOutcome(self, merchant: nil, partner: named, status: 200)
        return AdminResponse(.ok, json: AdminJSON.partner(changed), requestID: requestID, etag: AdminJSON.partnerETag(changed))
    }

    /// `DELETE /admin/v1/partners/{id}` under the partner's `If-Match`: the partner and its sealed secrets, as the
    /// store deletes them, refused with 409 while merchants use it. Whether merchants use it is decided by the store
    /// in the transaction that deletes (a merchant added a moment before counts), so a 409 follows the intent. The
    /// answer is the partner as it was.
    func removePartner(_ id: String) async throws -> AdminResponse {
        guard let current = try await api.service.store.partner(id: id) else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        _ = try ifMatch(AdminJSON.partnerETag(current), of: "partner", readAt: "/admin/v1/partners")
        let named = (id: id, environment: current.environment)
        try await api.recordIntent(self, merchant: nil, partner: named)
        do {
            try await api.service.removePartner(id: id)
        } catch let inUse as AdminService.PartnerInUse {
            throw GatewayError(.conflict, inUse.description)
        } catch is AdminError {
            throw GatewayError(.notFound, "no partner with id '\(id)'")
        }
        await api.recordOutcome(self, merchant: nil, partner: named, status: 200)
        return AdminResponse(.ok, json: AdminJSON.partner(current), requestID: requestID)
    }
}
