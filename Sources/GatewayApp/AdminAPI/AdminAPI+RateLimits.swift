import GatewayCore
import NIOCore

extension AdminAPI.Exchange {
    /// `GET /admin/v1/rate-limits/merchants/{id}`: the merchant's room per Klarna category under the `merchant` rule
    /// and the holds learned from Klarna's 429s, for the merchant as the running gateway's snapshot knows it.
    func merchantRateLimits(_ id: String) async throws -> AdminResponse {
        let snapshot = api.runtime.snapshots.current
        guard let record = snapshot.merchants[id]?.record else { throw GatewayError(.notFound, "no merchant with id '\(id)'") }
        // A merchant key is (merchant, category): one subject per category the catalogue knows finds every key
        // the request path can have made for it, without a scan of the limiter's map.
        let subjects = snapshot.catalogue.categories.sorted().map { category in
            RateLimitSubject(
                callerID: "", merchantID: record.id, merchantGroups: record.groups, partnerID: record.partnerID,
                environment: record.account.environment, category: category)
        }
        let rooms = await rooms(subjects, rule: .merchant, snapshot: snapshot)
        return AdminResponse(
            .ok,
            json: .object([("merchant_id", .string(record.id)), ("environment", .string(record.account.environment.rawValue))] + rooms),
            requestID: requestID)
    }

    /// `GET /admin/v1/rate-limits/callers/{id}`: the caller's room under the `caller` rule (its override in
    /// `rate-limits.yaml`, else the `caller` figure).
    func callerRateLimits(_ id: String) async throws -> AdminResponse {
        guard try await api.service.store.caller(id: id) != nil else { throw GatewayError(.notFound, "no caller with id '\(id)'") }
        let snapshot = api.runtime.snapshots.current
        // Only the caller's own key is read; partner, environment and category do not enter it.
        let subject = RateLimitSubject(callerID: id, merchantID: nil, merchantGroups: [], partnerID: "", environment: .test, category: "")
        let rooms = await rooms([subject], rule: .caller, snapshot: snapshot)
        return AdminResponse(.ok, json: .object([("caller_id", .string(id))] + rooms), requestID: requestID)
    }

    /// `GET /admin/v1/rate-limits/partners/{id}`: the partner's room per Klarna category under the `partner` rule
    /// (its override in `rate-limits.yaml`, else its environment's figures), shared by all its merchants' calls.
    func partnerRateLimits(_ id: String) async throws -> AdminResponse {
        let snapshot = api.runtime.snapshots.current
        guard let partner = snapshot.partners[id]?.record else { throw GatewayError(.notFound, "no partner with id '\(id)'") }
        let subjects = snapshot.catalogue.categories.sorted().map { category in
            RateLimitSubject(callerID: "", merchantID: nil, merchantGroups: [], partnerID: id, environment: partner.environment, category: category)
        }
        let rooms = await rooms(subjects, rule: .partner, snapshot: snapshot)
        return AdminResponse(
            .ok, json: .object([("partner_id", .string(id)), ("environment", .string(partner.environment.rawValue))] + rooms),
            requestID: requestID)
    }

    /// `GET /admin/v1/rate-limits/callers/{id}/merchants/{merchant}`: the room of one caller for one merchant under
    /// the `caller_merchant` rule; no rule configured, no rooms.
    func callerMerchantRateLimits(_ id: String, merchant: String) async throws -> AdminResponse {
        guard try await api.service.store.caller(id: id) != nil else { throw GatewayError(.notFound, "no caller with id '\(id)'") }
        let snapshot = api.runtime.snapshots.current
        guard let record = snapshot.merchants[merchant]?.record else { throw GatewayError(.notFound, "no merchant with id '\(merchant)'") }
        let subject = RateLimitSubject(
            callerID: id, merchantID: record.id, merchantGroups: record.groups, partnerID: record.partnerID,
            environment: record.account.environment, category: "")
        let rooms = await rooms([subject], rule: .callerMerchant, snapshot: snapshot)
        return AdminResponse(.ok, json: .object([("caller_id", .string(id)), ("merchant_id", .string(record.id))] + rooms), requestID: requestID)
    }

    /// `GET /admin/v1/rate-limits/global`: the room under the `global` rule, every call's; no rule configured, no
    /// rooms.
    func globalRateLimits() async throws -> AdminResponse {
        let snapshot = api.runtime.snapshots.current
        let subject = RateLimitSubject(callerID: "", merchantID: nil, merchantGroups: [], partnerID: "", environment: .test, category: "")
        return AdminResponse(.ok, json: .object(await rooms([subject], rule: .global, snapshot: snapshot)), requestID: requestID)
    }

    /// `GET /admin/v1/rate-limits/throttled`: every key a rule refused or delayed within the limiter's window, or
    /// Klarna's hold keeps back, a page at a time in byte order of its cursor (`rule:first:second`), optionally of
    /// one `rule`. The limiter copies its marks out under its lock; sorting and rendering happen after.
    func throttled() throws -> AdminResponse {
        let query = request.query
        let limit = try pageLimit()
        var rule: RateLimitRule?
        if let text = query["rule"] {
            guard let parsed = RateLimitRule(rawValue: text) else {
                throw GatewayError(.badRequest, "rule is one of \(RateLimitRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            rule = parsed
        }
        let after = query["after"]
        if let after, after.count > 200 { throw GatewayError(.badRequest, "after is a previous page's next_cursor") }
        let limiter = api.runtime.rateLimiter
        let (keys, complete) = limiter.throttled(now: Int64(NIODeadline.now().uptimeNanoseconds))
        let listed = keys.map { (cursor: AdminJSON.throttleCursor($0.key), throttle: $0) }
            .filter { entry in (rule.map { entry.throttle.key.rule == $0 } ?? true) && (after.map { entry.cursor > $0 } ?? true) }
            .sorted { $0.cursor < $1.cursor }
        let shown = listed.prefix(limit)
        return AdminResponse(
            .ok,
            json: .object([
                ("clustered", .bool(limiter.isClustered)),
                ("window_seconds", .int(Int(RateLimiter.throttleWindow / 1_000_000_000))),
                ("complete", .bool(complete)),
                ("throttled", .array(shown.map { AdminJSON.throttle($0.throttle) })),
                ("next_cursor", listed.count > limit ? shown.last.map { .string($0.cursor) } ?? .null : .null),
            ]),
            requestID: requestID)
    }

    /// The keys of `rule` that have a limit or a hold, read from the running limiter now.
    /// The keys' room under `rule` as JSON (`clustered`, `ledger`, `rules`): this instance's limiter, and in cluster
    /// mode the whole cluster's room read from the shared ledger, which this instance alone cannot know.
    private func rooms(_ subjects: [RateLimitSubject], rule: RateLimitRule, snapshot: GatewaySnapshot) async -> [(String, JSONValue)] {
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        let limiter = api.runtime.rateLimiter
        var rooms = limiter.room(subjects, rules: [rule], policy: snapshot.rateLimits, now: now).filter { $0.limit != nil || $0.heldFor > 0 }
        guard limiter.isClustered, let ledger = api.ledger else { return AdminJSON.rateLimitRooms(rooms, clustered: limiter.isClustered, ledger: nil) }
        let keys = rooms.compactMap { $0.limit == nil ? nil : $0.key }
        do {
            // Within the ledger client's timeout: an answer about a ledger that does not answer says so instead.
            let reading = try await ledger.reading(keys)
            rooms = rooms.map { $0.fromLedger(reading) }
            return AdminJSON.rateLimitRooms(rooms, clustered: true, ledger: "read")
        } catch {
            api.logger.warning("admin API: the quota ledger could not be read", metadata: ["error": "\(error)"])
            return AdminJSON.rateLimitRooms(rooms, clustered: true, ledger: "unavailable")
        }
    }
}
