import GatewayCore

/// One endpoint of the admin API: what it is called in the audit trail, its path template and the role it needs.
struct AdminRoute: Sendable, Equatable {
    /// `operation_id` of its audit records.
    let operationID: String
    /// The method it answers.
    let method: String
    /// `/admin/v1/merchants/{id}/suspend`: `{…}` segments match one path segment each.
    let template: String
    /// The least role allowed.
    let role: AdminRole

    /// Every endpoint but the OpenAPI document (which needs no token); docs/admin-openapi and docs/admin-api.md
    /// describe the same list.
    static let all: [AdminRoute] = [
        AdminRoute(operationID: "admin.listMerchants", method: "GET", template: "/admin/v1/merchants", role: .viewer),
        AdminRoute(operationID: "admin.getMerchant", method: "GET", template: "/admin/v1/merchants/{id}", role: .viewer),
        AdminRoute(operationID: "admin.suspendMerchant", method: "POST", template: "/admin/v1/merchants/{id}/suspend", role: .operator),
        AdminRoute(operationID: "admin.resumeMerchant", method: "POST", template: "/admin/v1/merchants/{id}/resume", role: .operator),
        AdminRoute(operationID: "admin.pinMerchantRelease", method: "PUT", template: "/admin/v1/merchants/{id}/release", role: .operator),
        AdminRoute(operationID: "admin.listCallers", method: "GET", template: "/admin/v1/callers", role: .viewer),
        AdminRoute(operationID: "admin.revokeCaller", method: "POST", template: "/admin/v1/callers/{name}/revoke", role: .operator),
        AdminRoute(operationID: "admin.listPartners", method: "GET", template: "/admin/v1/partners", role: .viewer),
    ]

    /// Where a request goes.
    enum Match: Equatable {
        /// This route, with the values of its `{…}` segments in order.
        case route(AdminRoute, parameters: [String])
        /// The path exists, not with this method; `allow` lists the methods it has.
        case methodNotAllowed(allow: String)
        /// No such path.
        case notFound
    }

    /// The route for `method` and `path` (no query).
    static func match(method: String, path: String) -> Match {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var allowed: [String] = []
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
            guard matches else { continue }
            if route.method == method { return .route(route, parameters: parameters) }
            allowed.append(route.method)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allow: allowed.joined(separator: ", "))
    }
}
