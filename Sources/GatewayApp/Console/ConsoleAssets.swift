import NIOHTTP1

/// The web console's files (`Resources/console/`), compiled into the binary and served as committed under
/// `/console/` on the admin listener: no CDN, no build step, nothing read from disk at run time.
enum ConsoleAssets {
    /// One file: its bytes and media type.
    struct Asset: Sendable {
        let bytes: [UInt8]
        let contentType: String
    }

    /// The files by their name under `/console/`; `""` is the page itself.
    static let files: [String: Asset] = {
        let html = "text/html; charset=utf-8"
        let js = "text/javascript; charset=utf-8"
        return [
            "": Asset(bytes: PackageResources.console_html, contentType: html),
            "console.css": Asset(bytes: PackageResources.console_css, contentType: "text/css; charset=utf-8"),
            "console.js": Asset(bytes: PackageResources.console_js, contentType: js),
            "console-api.js": Asset(bytes: PackageResources.console_api_js, contentType: js),
            "console-view.js": Asset(bytes: PackageResources.console_view_js, contentType: js),
            "console-overview.js": Asset(bytes: PackageResources.console_overview_js, contentType: js),
            "console-merchants.js": Asset(bytes: PackageResources.console_merchants_js, contentType: js),
            "console-merchant-forms.js": Asset(bytes: PackageResources.console_merchant_forms_js, contentType: js),
            "console-audit.js": Asset(bytes: PackageResources.console_audit_js, contentType: js),
            "console-audit-live.js": Asset(bytes: PackageResources.console_audit_live_js, contentType: js),
            "console-more.js": Asset(bytes: PackageResources.console_more_js, contentType: js),
            "console-release-calendar.js": Asset(bytes: PackageResources.console_release_calendar_js, contentType: js),
            "console-rate-limits.js": Asset(bytes: PackageResources.console_rate_limits_js, contentType: js),
            "console-policies.js": Asset(bytes: PackageResources.console_policies_js, contentType: js),
            "console-policy-history.js": Asset(bytes: PackageResources.console_policy_history_js, contentType: js),
            "console-admins.js": Asset(bytes: PackageResources.console_admins_js, contentType: js),
            "console-partners.js": Asset(bytes: PackageResources.console_partners_js, contentType: js),
            "console-webhooks.js": Asset(bytes: PackageResources.console_webhooks_js, contentType: js),
        ]
    }()

    /// Only same-origin files, scripts and styles run; the page cannot be framed (clickjacking), sends no referrer
    /// and connects nowhere but the admin listener. No inline script or style is allowed, so an injected tag does
    /// nothing.
    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; "
        + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// The answer to a GET or HEAD of `path` (`/console` or under `/console/`): the file, a redirect from
    /// `/console` to `/console/`, or 404.
    static func answer(method: HTTPMethod, path: String) -> (HTTPResponseHead, [UInt8]) {
        var headers = HTTPHeaders()
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Referrer-Policy", value: "no-referrer")
        headers.add(name: "X-Frame-Options", value: "DENY")
        headers.add(name: "Cross-Origin-Opener-Policy", value: "same-origin")
        headers.add(name: "Content-Security-Policy", value: contentSecurityPolicy)
        func answer(_ status: HTTPResponseStatus, _ body: [UInt8], _ type: String) -> (HTTPResponseHead, [UInt8]) {
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(body.count))
            return (HTTPResponseHead(version: .http1_1, status: status, headers: headers), method == .HEAD ? [] : body)
        }
        guard method == .GET || method == .HEAD else {
            headers.add(name: "Allow", value: "GET, HEAD")
            return answer(.methodNotAllowed, Array("{\"error\":\"the console's files answer GET and HEAD\"}".utf8), "application/json")
        }
        if path == "/console" {
            headers.add(name: "Location", value: "/console/")
            return answer(.found, [], "text/plain; charset=utf-8")
        }
        guard let asset = files[String(path.dropFirst("/console/".count))] else {
            return answer(.notFound, Array("{\"error\":\"not found\"}".utf8), "application/json")
        }
        return answer(.ok, asset.bytes, asset.contentType)
    }
}
