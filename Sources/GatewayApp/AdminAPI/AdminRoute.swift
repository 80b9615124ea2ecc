import GatewayCore

/// What an endpoint does; its raw value is the `operationId` in the OpenAPI document and the `operation_id` of
/// its audit records.
enum AdminAction: String, Sendable {
    case getAccount = "admin.getAccount"
    case listMerchants = "admin.listMerchants"
    case getMerchant = "admin.getMerchant"
    case suspendMerchant = "admin.suspendMerchant"
    case resumeMerchant = "admin.resumeMerchant"
    case pinMerchantRelease = "admin.pinMerchantRelease"
    case listCallers = "admin.listCallers"
    case revokeCaller = "admin.revokeCaller"
    case addCaller = "admin.addCaller"
    case rotateCallerToken = "admin.rotateCallerToken"
    case addMerchant = "admin.addMerchant"
    case updateMerchant = "admin.updateMerchant"
    case removeMerchant = "admin.removeMerchant"
    case importMerchants = "admin.importMerchants"
    case listPartners = "admin.listPartners"
    case addPartner = "admin.addPartner"
    case replacePartnerCredentials = "admin.replacePartnerCredentials"
    case updatePartner = "admin.updatePartner"
    case removePartner = "admin.removePartner"
    case listAdmins = "admin.listAdmins"
    case addAdmin = "admin.addAdmin"
    case removeAdmin = "admin.removeAdmin"
    case listAuditRecords = "admin.listAuditRecords"
    case tailAuditRecords = "admin.tailAuditRecords"
    case getAuditStatus = "admin.getAuditStatus"
    case getLogLevel = "admin.getLogLevel"
    case setLogLevel = "admin.setLogLevel"
    case getTraffic = "admin.getTraffic"
    case verifyAuditTrail = "admin.verifyAuditTrail"
    case listUpstreams = "admin.listUpstreams"
    case listReleases = "admin.listReleases"
    case getMerchantRateLimits = "admin.getMerchantRateLimits"
    case getCallerRateLimits = "admin.getCallerRateLimits"
    case getPartnerRateLimits = "admin.getPartnerRateLimits"
    case getCallerMerchantRateLimits = "admin.getCallerMerchantRateLimits"
    case getGlobalRateLimits = "admin.getGlobalRateLimits"
    case listThrottled = "admin.listThrottled"
    case getAccessPolicy = "admin.getAccessPolicy"
    case validateAccessPolicy = "admin.validateAccessPolicy"
    case getRateLimitPolicy = "admin.getRateLimitPolicy"
    case validateRateLimitPolicy = "admin.validateRateLimitPolicy"
    case applyAccessPolicy = "admin.applyAccessPolicy"
    case applyRateLimitPolicy = "admin.applyRateLimitPolicy"
    case getAccessPolicyHistory = "admin.getAccessPolicyHistory"
    case getRateLimitPolicyHistory = "admin.getRateLimitPolicyHistory"
    case rollBackAccessPolicy = "admin.rollBackAccessPolicy"
    case rollBackRateLimitPolicy = "admin.rollBackRateLimitPolicy"
    case useAccessPolicyFile = "admin.useAccessPolicyFile"
    case useRateLimitPolicyFile = "admin.useRateLimitPolicyFile"
    case previewRollout = "admin.previewRollout"
    case listRollouts = "admin.listRollouts"
    case applyRollout = "admin.applyRollout"
    case rollBackRelease = "admin.rollBackRelease"
    case getReleaseHistory = "admin.getReleaseHistory"
    case listWebhookDestinations = "admin.listWebhookDestinations"
    case listWebhookEvents = "admin.listWebhookEvents"
    case listWebhookKeys = "admin.listWebhookKeys"
    case addWebhookDestination = "admin.addWebhookDestination"
    case replaceWebhookDestination = "admin.replaceWebhookDestination"
    case removeWebhookDestination = "admin.removeWebhookDestination"
    case addWebhookKey = "admin.addWebhookKey"
    case rotateWebhookKey = "admin.rotateWebhookKey"
    case removeWebhookKey = "admin.removeWebhookKey"
    case getWebhookEvent = "admin.getWebhookEvent"
    case replayWebhookEvent = "admin.replayWebhookEvent"
}

/// One endpoint of the admin API: what it does, its path template and the role it needs.
struct AdminRoute: Sendable, Equatable {
    /// What it does.
    let action: AdminAction
    /// The method it answers.
    let method: String
    /// `/admin/v1/merchants/{id}/suspend`: `{…}` segments match one path segment each.
    let template: String
    /// The least role allowed.
    let role: AdminRole

    /// Every endpoint but the OpenAPI document (which needs no token); `Resources/admin-openapi.json` and
    /// docs/admin-api.md describe the same list (a test compares the document with it).
    static let all: [AdminRoute] = [
        AdminRoute(action: .getAccount, method: "GET", template: "/admin/v1/account", role: .viewer),
        AdminRoute(action: .listMerchants, method: "GET", template: "/admin/v1/merchants", role: .viewer),
        AdminRoute(action: .getMerchant, method: "GET", template: "/admin/v1/merchants/{id}", role: .viewer),
        AdminRoute(action: .addMerchant, method: "POST", template: "/admin/v1/merchants", role: .operator),
        AdminRoute(action: .updateMerchant, method: "PATCH", template: "/admin/v1/merchants/{id}", role: .operator),
        AdminRoute(action: .removeMerchant, method: "DELETE", template: "/admin/v1/merchants/{id}", role: .operator),
        AdminRoute(action: .importMerchants, method: "POST", template: "/admin/v1/merchants/import", role: .operator),
        AdminRoute(action: .suspendMerchant, method: "POST", template: "/admin/v1/merchants/{id}/suspend", role: .operator),
        AdminRoute(action: .resumeMerchant, method: "POST", template: "/admin/v1/merchants/{id}/resume", role: .operator),
        AdminRoute(action: .pinMerchantRelease, method: "PUT", template: "/admin/v1/merchants/{id}/release", role: .operator),
        AdminRoute(action: .listCallers, method: "GET", template: "/admin/v1/callers", role: .viewer),
        AdminRoute(action: .revokeCaller, method: "POST", template: "/admin/v1/callers/{name}/revoke", role: .operator),
        AdminRoute(action: .addCaller, method: "POST", template: "/admin/v1/callers", role: .operator),
        AdminRoute(action: .rotateCallerToken, method: "POST", template: "/admin/v1/callers/{name}/rotate-token", role: .operator),
        AdminRoute(action: .listPartners, method: "GET", template: "/admin/v1/partners", role: .viewer),
        AdminRoute(action: .addPartner, method: "POST", template: "/admin/v1/partners", role: .security),
        AdminRoute(action: .replacePartnerCredentials, method: "PUT", template: "/admin/v1/partners/{id}/credentials", role: .security),
        AdminRoute(action: .updatePartner, method: "PATCH", template: "/admin/v1/partners/{id}", role: .security),
        AdminRoute(action: .removePartner, method: "DELETE", template: "/admin/v1/partners/{id}", role: .security),
        AdminRoute(action: .listAdmins, method: "GET", template: "/admin/v1/admins", role: .security),
        AdminRoute(action: .addAdmin, method: "POST", template: "/admin/v1/admins", role: .security),
        AdminRoute(action: .removeAdmin, method: "DELETE", template: "/admin/v1/admins/{name}", role: .security),
        AdminRoute(action: .listAuditRecords, method: "GET", template: "/admin/v1/audit/records", role: .viewer),
        AdminRoute(action: .tailAuditRecords, method: "GET", template: "/admin/v1/audit/tail", role: .viewer),
        AdminRoute(action: .getAuditStatus, method: "GET", template: "/admin/v1/audit/status", role: .viewer),
        AdminRoute(action: .getLogLevel, method: "GET", template: "/admin/v1/log-level", role: .viewer),
        AdminRoute(action: .setLogLevel, method: "PUT", template: "/admin/v1/log-level", role: .operator),
        AdminRoute(action: .getTraffic, method: "GET", template: "/admin/v1/audit/traffic", role: .viewer),
        AdminRoute(action: .verifyAuditTrail, method: "GET", template: "/admin/v1/audit/verification", role: .operator),
        AdminRoute(action: .listUpstreams, method: "GET", template: "/admin/v1/upstreams", role: .viewer),
        AdminRoute(action: .listReleases, method: "GET", template: "/admin/v1/releases", role: .viewer),
        AdminRoute(action: .previewRollout, method: "GET", template: "/admin/v1/releases/rollout-preview", role: .viewer),
        AdminRoute(action: .listRollouts, method: "GET", template: "/admin/v1/releases/rollouts", role: .viewer),
        AdminRoute(action: .applyRollout, method: "POST", template: "/admin/v1/releases/rollouts", role: .operator),
        AdminRoute(action: .rollBackRelease, method: "DELETE", template: "/admin/v1/releases/rollouts/{release}", role: .operator),
        AdminRoute(action: .getReleaseHistory, method: "GET", template: "/admin/v1/releases/history", role: .viewer),
        AdminRoute(action: .getMerchantRateLimits, method: "GET", template: "/admin/v1/rate-limits/merchants/{id}", role: .viewer),
        AdminRoute(action: .getCallerRateLimits, method: "GET", template: "/admin/v1/rate-limits/callers/{id}", role: .viewer),
        AdminRoute(
            action: .getCallerMerchantRateLimits, method: "GET", template: "/admin/v1/rate-limits/callers/{id}/merchants/{merchant}", role: .viewer),
        AdminRoute(action: .getPartnerRateLimits, method: "GET", template: "/admin/v1/rate-limits/partners/{id}", role: .viewer),
        AdminRoute(action: .getGlobalRateLimits, method: "GET", template: "/admin/v1/rate-limits/global", role: .viewer),
        AdminRoute(action: .listThrottled, method: "GET", template: "/admin/v1/rate-limits/throttled", role: .viewer),
        AdminRoute(action: .getAccessPolicy, method: "GET", template: "/admin/v1/policies/access", role: .viewer),
        AdminRoute(action: .validateAccessPolicy, method: "POST", template: "/admin/v1/policies/access/validate", role: .operator),
        AdminRoute(action: .getRateLimitPolicy, method: "GET", template: "/admin/v1/policies/rate-limits", role: .viewer),
        AdminRoute(action: .validateRateLimitPolicy, method: "POST", template: "/admin/v1/policies/rate-limits/validate", role: .operator),
        // Access grants callers their rights, as credentials do: changing it is the security role's; rate limits are
        // operations' business.
        AdminRoute(action: .applyAccessPolicy, method: "PUT", template: "/admin/v1/policies/access", role: .security),
        AdminRoute(action: .applyRateLimitPolicy, method: "PUT", template: "/admin/v1/policies/rate-limits", role: .operator),
        AdminRoute(action: .getAccessPolicyHistory, method: "GET", template: "/admin/v1/policies/access/history", role: .viewer),
        AdminRoute(action: .getRateLimitPolicyHistory, method: "GET", template: "/admin/v1/policies/rate-limits/history", role: .viewer),
        AdminRoute(action: .rollBackAccessPolicy, method: "POST", template: "/admin/v1/policies/access/rollback", role: .security),
        AdminRoute(action: .rollBackRateLimitPolicy, method: "POST", template: "/admin/v1/policies/rate-limits/rollback", role: .operator),
        AdminRoute(action: .useAccessPolicyFile, method: "DELETE", template: "/admin/v1/policies/access", role: .security),
        AdminRoute(action: .useRateLimitPolicyFile, method: "DELETE", template: "/admin/v1/policies/rate-limits", role: .operator),
        AdminRoute(action: .listWebhookDestinations, method: "GET", template: "/admin/v1/webhooks/destinations", role: .viewer),
        AdminRoute(action: .listWebhookEvents, method: "GET", template: "/admin/v1/webhooks/events", role: .viewer),
        AdminRoute(action: .listWebhookKeys, method: "GET", template: "/admin/v1/webhooks/keys", role: .viewer),
        AdminRoute(action: .addWebhookDestination, method: "POST", template: "/admin/v1/webhooks/destinations", role: .security),
        AdminRoute(action: .replaceWebhookDestination, method: "PUT", template: "/admin/v1/webhooks/destinations/{name}", role: .security),
        AdminRoute(action: .removeWebhookDestination, method: "DELETE", template: "/admin/v1/webhooks/destinations/{name}", role: .security),
        AdminRoute(action: .addWebhookKey, method: "POST", template: "/admin/v1/webhooks/keys", role: .security),
        AdminRoute(action: .rotateWebhookKey, method: "POST", template: "/admin/v1/webhooks/keys/rotate", role: .security),
        AdminRoute(action: .removeWebhookKey, method: "DELETE", template: "/admin/v1/webhooks/keys/{partner}/{key_id}", role: .security),
        AdminRoute(action: .getWebhookEvent, method: "GET", template: "/admin/v1/webhooks/events/{id}", role: .viewer),
        AdminRoute(action: .replayWebhookEvent, method: "POST", template: "/admin/v1/webhooks/events/{id}/replay", role: .operator),
    ]

    /// `operation_id` of its audit records.
    var operationID: String { action.rawValue }

    /// Where a request goes.
    enum Match: Equatable {
        /// This route, with the values of its `{…}` segments in order.
        case route(AdminRoute, parameters: [String])
        /// The path exists, not with this method; `allow` lists the methods it has.
        case methodNotAllowed(allow: String)
        /// No such path.
        case notFound
    }

    /// The route for `method` and `path` (no query). As in OpenAPI, a path that matches a template with fewer
    /// `{…}` segments is that template's only (`/merchants/import` is the import, never the merchant `import`).
    static func match(method: String, path: String) -> Match {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var candidates: [(route: AdminRoute, parameters: [String])] = []
        for route in all {
            let template = route.template.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard template.count == segments.count else { continue }
            var parameters: [String] = []
            let matches = zip(template, segments).allSatisfy { pattern, segment in
                if pattern.hasPrefix("{") {
                    parameters.append(String(segment))
                    return !segment.isEmpty
                }
                return pattern == segment
            }
            if matches { candidates.append((route, parameters)) }
        }
        guard let fewest = candidates.map(\.parameters.count).min() else { return .notFound }
        let specific = candidates.filter { $0.parameters.count == fewest }
        if let found = specific.first(where: { $0.route.method == method }) { return .route(found.route, parameters: found.parameters) }
        return .methodNotAllowed(allow: specific.map(\.route.method).joined(separator: ", "))
    }
}
