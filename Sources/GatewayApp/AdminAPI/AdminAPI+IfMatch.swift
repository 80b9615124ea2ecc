import GatewayCore

extension AdminAPI.Exchange {
    /// The request's `If-Match` when it names `current`, the resource's `ETag`: missing 428 (saying where to read
    /// it), not an `ETag` of this API 400, stale 412 with the current one. Every conditional change checks here.
    func ifMatch(_ current: String, of resource: String, readAt path: String) throws -> String {
        guard let ifMatch = request.headers.first(name: "If-Match") else {
            throw GatewayError(.preconditionRequired, "send If-Match with the \(resource)'s ETag (GET \(path))")
        }
        guard EntityTag.isWellFormed(ifMatch) else {
            throw GatewayError(.badRequest, "If-Match is not an ETag of this API (a quoted string of 32 hex digits; * is not accepted)")
        }
        guard ifMatch == current else { throw Self.stale(current, of: resource) }
        return ifMatch
    }

    /// 412: `resource` changed since its `ETag` was read; the answer carries the current one.
    static func stale(_ current: String, of resource: String) -> GatewayError {
        GatewayError(
            .preconditionFailed, "the \(resource) changed since that ETag was read; read it again and retry", headers: [.init("ETag", current)])
    }
}
