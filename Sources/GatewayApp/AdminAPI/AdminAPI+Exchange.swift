import GatewayCore

extension AdminAPI {
    /// One authenticated, authorized request and what it learned on the way (the merchant it names, for the
    /// refusal record if it is refused later).
    final class Exchange {
        let api: AdminAPI
        let request: AdminRequest
        let requestID: String
        let account: AdminAccount
        let route: AdminRoute
        var merchant: MerchantRecord?

        init(api: AdminAPI, request: AdminRequest, requestID: String, account: AdminAccount, route: AdminRoute) {
            self.api = api
            self.request = request
            self.requestID = requestID
            self.account = account
            self.route = route
        }

        /// Carries out the route; refusals are thrown as `GatewayError`s.
        func perform(_ parameters: [String]) async throws -> AdminResponse {
            switch route.action {
            // Who the token belongs to, so a client (the console) can offer only what the role may do.
            case .getAccount:
                return AdminResponse(
                    .ok, json: .object([("name", .string(account.name)), ("role", .string(account.role.rawValue))]), requestID: requestID)
            case .listMerchants: return try await listMerchants()
            case .getMerchant:
                let record = try await find(parameters[0])
                return AdminResponse(.ok, json: AdminJSON.merchant(record), requestID: requestID, etag: record.etag)
            case .suspendMerchant: return try await changeMerchant(parameters[0]) { $0.status = .suspended }
            case .resumeMerchant: return try await changeMerchant(parameters[0]) { $0.status = .active }
            case .pinMerchantRelease: return try await pinRelease(parameters[0])
            case .listCallers:
                let callers = try await api.service.listCallers()
                return AdminResponse(.ok, json: .object([("callers", .array(callers.map(AdminJSON.caller)))]), requestID: requestID)
            case .revokeCaller: return try await revokeCaller(parameters[0])
            case .addCaller: return try await addCaller()
            case .rotateCallerToken: return try await rotateCallerToken(parameters[0])
            case .addMerchant: return try await addMerchant()
            case .updateMerchant: return try await updateMerchant(parameters[0])
            case .removeMerchant: return try await removeMerchant(parameters[0])
            case .importMerchants: return try await importMerchants()
            case .listPartners:
                let partners = try await api.service.store.partners()
                return AdminResponse(.ok, json: .object([("partners", .array(partners.map(AdminJSON.partner)))]), requestID: requestID)
            case .addPartner: return try await addPartner()
            case .getLogLevel: return getLogLevel()
            case .setLogLevel: return try await setLogLevel()
            case .replacePartnerCredentials: return try await replacePartnerCredentials(parameters[0])
            case .updatePartner: return try await updatePartner(parameters[0])
            case .removePartner: return try await removePartner(parameters[0])
            case .listAdmins: return try await listAdmins()
            case .addAdmin: return try await addAdmin()
            case .removeAdmin: return try await removeAdmin(parameters[0])
            case .listAuditRecords: return try await listAuditRecords()
            case .tailAuditRecords: return try await tailAuditRecords()
            case .getAuditStatus: return AdminResponse(.ok, json: AdminJSON.auditStatus(api.audit?.writer.health), requestID: requestID)
            case .getTraffic: return try await traffic()
            case .verifyAuditTrail: return try await verifyTrail()
            case .listUpstreams: return AdminResponse(.ok, json: AdminJSON.upstreams(api.runtime), requestID: requestID)
            case .listReleases: return AdminResponse(.ok, json: AdminJSON.releases(api.runtime.snapshots.current), requestID: requestID)
            case .previewRollout: return try previewRollout()
            case .listRollouts: return try await listRollouts()
            case .applyRollout: return try await applyRollout()
            case .rollBackRelease: return try await rollBack(parameters[0])
            case .getReleaseHistory: return try await releaseHistory()
            case .getMerchantRateLimits: return try await merchantRateLimits(parameters[0])
            case .getCallerRateLimits: return try await callerRateLimits(parameters[0])
            case .getCallerMerchantRateLimits: return try await callerMerchantRateLimits(parameters[0], merchant: parameters[1])
            case .getPartnerRateLimits: return try await partnerRateLimits(parameters[0])
            case .getGlobalRateLimits: return try await globalRateLimits()
            case .listThrottled: return try throttled()
            case .getAccessPolicy: return try await policy(.access)
            case .validateAccessPolicy: return try await validatePolicy(.access)
            case .getRateLimitPolicy: return try await policy(.rateLimits)
            case .validateRateLimitPolicy: return try await validatePolicy(.rateLimits)
            case .applyAccessPolicy: return try await applyPolicy(.access)
            case .applyRateLimitPolicy: return try await applyPolicy(.rateLimits)
            case .getAccessPolicyHistory: return try await policyHistory(.access)
            case .getRateLimitPolicyHistory: return try await policyHistory(.rateLimits)
            case .rollBackAccessPolicy: return try await rollBackPolicy(.access)
            case .rollBackRateLimitPolicy: return try await rollBackPolicy(.rateLimits)
            case .useAccessPolicyFile: return try await returnPolicyToFile(.access)
            case .useRateLimitPolicyFile: return try await returnPolicyToFile(.rateLimits)
            case .listWebhookDestinations: return try await listWebhookDestinations()
            case .listWebhookEvents: return try await listWebhookEvents()
            case .listWebhookKeys: return try await listWebhookKeys()
            case .addWebhookDestination: return try await addWebhookDestination()
            case .replaceWebhookDestination: return try await replaceWebhookDestination(parameters[0])
            case .removeWebhookDestination: return try await removeWebhookDestination(parameters[0])
            case .addWebhookKey: return try await addWebhookKey()
            case .rotateWebhookKey: return try await rotateWebhookKey()
            case .removeWebhookKey: return try await removeWebhookKey(partner: parameters[0], keyID: Self.decoded(parameters[1]))
            case .getWebhookEvent: return try await webhookEvent(Self.decoded(parameters[0]))
            case .replayWebhookEvent: return try await replayWebhookEvent(Self.decoded(parameters[0]))
            }
        }

        /// A page of merchants: `limit` (1–500, 50 by default), `after` (the previous page's `next_cursor`), `q`.
        private func listMerchants() async throws -> AdminResponse {
            let query = request.query
            let limit = try pageLimit()
            let search = query["q"].flatMap { $0.isEmpty ? nil : $0 }
            if let search, search.count > 100 { throw GatewayError(.badRequest, "q has at most 100 characters") }
            if let after = query["after"], after.count > 64 { throw GatewayError(.badRequest, "after is a merchant id: at most 64 characters") }
            // One more than asked tells whether another page follows without a count over the whole table.
            let page = try await api.service.merchantPage(after: query["after"], matching: search, limit: limit + 1)
            let shown = page.prefix(limit)
            let next: JSONValue = page.count > limit ? shown.last.map { .string($0.id) } ?? .null : .null
            return AdminResponse(.ok, json: .object([("merchants", .array(shown.map(AdminJSON.merchant))), ("next_cursor", next)]), requestID: requestID)
        }

        /// A list's `limit` parameter: 1–500, 50 when not given.
        func pageLimit() throws -> Int {
            guard let text = request.query["limit"] else { return 50 }
            guard let value = Int(text), (1...500).contains(value) else { throw GatewayError(.badRequest, "limit is a number from 1 to 500") }
            return value
        }

        func find(_ id: String) async throws -> MerchantRecord {
            guard let record = try await api.service.store.merchant(id: id) else {
                throw GatewayError(.notFound, "no merchant with id '\(id)'")
            }
            merchant = record
            return record
        }

        /// A change under `If-Match`: missing 428, stale 412 (with the current `ETag`), else intent, write, outcome.
        private func changeMerchant(_ id: String, _ change: @escaping (inout MerchantRecord) throws -> Void) async throws -> AdminResponse {
            try await changeMerchant(id, prepared: { _ in change })
        }

        /// The merchant `id` if `If-Match` names its current version: missing 428, malformed 400, stale 412.
        func matching(_ id: String) async throws -> (current: MerchantRecord, ifMatch: String) {
            let current = try await find(id)
            return (current, try self.ifMatch(current.etag, of: "merchant", readAt: "/admin/v1/merchants/\(id)"))
        }

        /// As above, with the change made from what `prepare` looks up (a partner) once `If-Match` has matched, so a
        /// stale request is refused before anything else is read.
        func changeMerchant(
            _ id: String, prepared prepare: (MerchantRecord) async throws -> (inout MerchantRecord) throws -> Void
        ) async throws -> AdminResponse {
            let (current, ifMatch) = try await matching(id)
            let change = try await prepare(current)
            var preview = current
            try change(&preview)
            try await api.recordIntent(self, merchant: preview)
            let changed: MerchantRecord
            do {
                changed = try await api.service.changeMerchant(id: id, ifMatch: ifMatch, change)
            } catch AdminService.ConditionalChangeError.stale(let now) {
                merchant = now
                throw Self.stale(now.etag, of: "merchant")
            }
            merchant = changed
            await api.recordOutcome(self, merchant: changed, status: 200)
            return AdminResponse(.ok, json: AdminJSON.merchant(changed), requestID: requestID, etag: changed.etag)
        }

        /// `{"release":"r5"}` pins, `{"release":null}` removes the pin; a release not available in the merchant's
        /// environment is refused, as `merchants update --release` refuses it.
        private func pinRelease(_ id: String) async throws -> AdminResponse {
            guard let body = try? JSONValue.parse(request.body), let value = body["release"] else {
                throw GatewayError(.badRequest, "send {\"release\": \"NAME\"} or {\"release\": null}")
            }
            let release: String?
            switch value {
            case .null: release = nil
            case .string(let name): release = name
            default: throw GatewayError(.badRequest, "release is a release name or null")
            }
            let policy = api.releases()
            return try await changeMerchant(id) { record in
                if let release {
                    try self.serviceRule { try AdminService.checkPin(release, environment: record.account.environment, policy: policy) }
                }
                record.release = release
            }
        }

        /// Revoking only ever takes rights away and repeating it changes nothing, so it needs no `If-Match`.
        private func revokeCaller(_ id: String) async throws -> AdminResponse {
            guard try await api.service.store.caller(id: id) != nil else { throw GatewayError(.notFound, "no caller with id '\(id)'") }
            try await api.recordIntent(self, merchant: nil)
            let revoked = try await api.service.revokeCaller(id: id)
            await api.recordOutcome(self, merchant: nil, status: 200)
            return AdminResponse(.ok, json: AdminJSON.caller(revoked), requestID: requestID)
        }
    }
}
