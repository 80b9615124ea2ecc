import GatewayCore

extension AdminAPI.Exchange {
    /// `POST /admin/v1/merchants` `{"id","partner_id","account"[,"groups"]}`: as `merchants add` (without an own API
    /// key, which is a secret and not taken here). An unknown partner 404; an account of the other environment 422;
    /// an id or account already taken 409.
    func addMerchant() async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["id", "partner_id", "account", "groups"], shape: #"{"id": "ID", "partner_id": "ID", "account": "KRN", "groups": ["NAME"]}"#)
        let id = try body.requiredString("id")
        let partnerID = try body.requiredString("partner_id")
        let account = try body.requiredString("account", maxLength: AccountKRN.maximumLength)
        let groups = try body.strings("groups") ?? []
        if let problem = MerchantRecord.problem(withID: id) { throw GatewayError(.badRequest, problem) }
        let partner = try await partner(partnerID)
        try checkAccount(account, partner: partner)
        if try await api.service.store.merchant(id: id) != nil { throw GatewayError(.conflict, "merchant '\(id)' already exists") }
        try await checkAccountFree(account, for: id)
        let krn = try serviceRule { try AdminService.checkMerchant(id: id, partner: partner, account: account, groups: groups) }
        let preview = MerchantRecord(id: id, partnerID: partnerID, account: krn, groups: groups)
        merchant = preview
        try await api.recordIntent(self, merchant: preview)
        let added = try await serviceRule { try await api.service.addMerchant(id: id, partnerID: partnerID, account: account, groups: groups) }
        merchant = added
        await api.recordOutcome(self, merchant: added, status: 201)
        return AdminResponse(.created, json: AdminJSON.merchant(added), requestID: requestID, etag: added.etag)
    }

    /// `PATCH /admin/v1/merchants/{id}` under `If-Match`: any of `partner_id`, `account`, `groups`, `status`,
    /// `release` (null removes the pin), checked as `merchants add` and `merchants update` check them. A pin is
    /// checked again when the account moves to the other environment.
    func updateMerchant(_ id: String) async throws -> AdminResponse {
        let fields = ["partner_id", "account", "groups", "status", "release"]
        let body = try AdminRequestBody(request.body, allowed: Set(fields), shape: "an object of any of " + fields.joined(separator: ", "))
        guard fields.contains(where: body.has) else { throw GatewayError(.badRequest, "send at least one of " + fields.joined(separator: ", ")) }
        let partnerID = try body.string("partner_id")
        let account = try body.string("account", maxLength: AccountKRN.maximumLength)
        let groups = try body.strings("groups")
        let status = try body.string("status").map { text in
            guard let status = MerchantStatus(rawValue: text) else { throw GatewayError(.badRequest, "status is active or suspended") }
            return status
        }
        let release = try body.string("release", nullable: true)
        let policy = api.releases()
        return try await changeMerchant(id, prepared: { current in
            let partner = try await self.partner(partnerID ?? current.partnerID)
            let newAccount = account ?? current.account.rawValue
            try self.checkAccount(newAccount, partner: partner)
            if newAccount != current.account.rawValue { try await self.checkAccountFree(newAccount, for: id) }
            return { record in
                let krn = try self.serviceRule {
                    try AdminService.checkMerchant(id: id, partner: partner, account: newAccount, groups: groups ?? record.groups)
                }
                let environmentChanged = krn.environment != record.account.environment
                record.partnerID = partner.id
                record.account = krn
                if let groups { record.groups = groups }
                if let status { record.status = status }
                if body.has("release") { record.release = release }
                if let pin = record.release, body.has("release") || environmentChanged {
                    try self.serviceRule { try AdminService.checkPin(pin, environment: krn.environment, policy: policy) }
                }
            }
        })
    }

    /// `DELETE /admin/v1/merchants/{id}` under `If-Match`: as `merchants remove`, its sealed secrets with it. The
    /// answer is the merchant as it was.
    func removeMerchant(_ id: String) async throws -> AdminResponse {
        let (current, _) = try await matching(id)
        try await api.recordIntent(self, merchant: current)
        do {
            try await api.service.removeMerchant(id: id)
        } catch is AdminError {
            throw GatewayError(.notFound, "no merchant with id '\(id)'")
        }
        await api.recordOutcome(self, merchant: current, status: 200)
        return AdminResponse(.ok, json: AdminJSON.merchant(current), requestID: requestID)
    }

    /// `POST /admin/v1/merchants/import` with a `text/csv` body: `merchants import` exactly (all or nothing, every
    /// problem by line number); the answer counts what was added and updated.
    func importMerchants() async throws -> AdminResponse {
        guard let text = String(validating: request.body, as: UTF8.self), !text.isEmpty else {
            throw GatewayError(.badRequest, "send the CSV (id,partner,account[,group]) as UTF-8 text")
        }
        try await api.recordIntent(self, merchant: nil)
        let result = try await serviceRule { try await api.service.importMerchants(csv: text) }
        await api.recordOutcome(self, merchant: nil, status: 200)
        return AdminResponse(.ok, json: .object([("added", .int(result.added)), ("updated", .int(result.updated))]), requestID: requestID)
    }

    /// The partner a merchant names; 404 when there is none.
    private func partner(_ id: String) async throws -> PartnerRecord {
        guard let partner = try await api.service.store.partner(id: id) else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        return partner
    }

    /// The account's shape (400) and environment against the partner's (422), before the rules `AdminService` keeps.
    private func checkAccount(_ account: String, partner: PartnerRecord) throws {
        guard let krn = AccountKRN(account) else {
            throw GatewayError(.badRequest, "account is a partner account KRN (krn:partner:global:account:test|live:ID)")
        }
        guard krn.environment == partner.environment else {
            throw GatewayError(
                .environmentMismatch, "account is a \(krn.environment.rawValue) account but partner '\(partner.id)' is \(partner.environment.rawValue)")
        }
    }

    /// 409 when another merchant holds the account: the store's unique index would refuse it later as a failure.
    private func checkAccountFree(_ account: String, for id: String) async throws {
        guard let krn = AccountKRN(account), let holder = try await api.service.store.merchant(account: krn), holder.id != id else { return }
        throw GatewayError(.conflict, "account \(account) already belongs to merchant '\(holder.id)'")
    }
}
