import GatewayCore

/// Refuses a change a browser sends on behalf of another site. The console keeps its token in page memory and
/// sends it in `Authorization`, which a browser never adds by itself, so a forged request carries no token; this
/// check is the second wall: a browser always names the page's origin in `Origin` (and `Sec-Fetch-Site`) on a
/// non-GET request, and a page of another origin is refused before its token is even looked at.
enum CrossSiteCheck {
    /// 403 for a change whose `Origin` is not the listener's own (`Host`), or whose `Sec-Fetch-Site` says another
    /// site sent it; nil otherwise. Reads (GET, HEAD) change nothing and are not checked. Clients that are not
    /// browsers (curl, scripts) send neither header and pass.
    static func refusal(_ request: AdminRequest) -> GatewayError? {
        guard request.method != "GET", request.method != "HEAD" else { return nil }
        if let site = request.headers.first(name: "Sec-Fetch-Site"), site != "same-origin", site != "none" {
            return GatewayError(.forbidden, "a change must come from the console's own origin (Sec-Fetch-Site: \(site.prefix(20)))")
        }
        guard let origin = request.headers.first(name: "Origin") else { return nil }
        let host = request.headers.first(name: "Host")?.lowercased()
        // `null` (a sandboxed frame, a file: page) and any origin whose host:port is not this listener's are refused.
        guard let schemeEnd = origin.range(of: "://"), let host, origin[schemeEnd.upperBound...].lowercased() == host else {
            return GatewayError(.forbidden, "a change must come from the console's own origin; Origin does not match Host")
        }
        return nil
    }
}
