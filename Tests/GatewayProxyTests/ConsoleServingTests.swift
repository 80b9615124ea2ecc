import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// The console's files as the admin listener serves them, and the admin API's refusal of cross-site changes,
/// checked over HTTP without a browser.
@Suite("Console serving")
struct ConsoleServingTests {
    static let files = ["", "console.css", "console.js", "console-api.js", "console-view.js", "console-overview.js", "console-merchants.js", "console-merchant-forms.js", "console-audit.js", "console-audit-live.js", "console-more.js", "console-release-calendar.js", "console-rate-limits.js", "console-policies.js", "console-policy-history.js", "console-admins.js", "console-partners.js", "console-webhooks.js"]

    @Test("every file is served as committed with a strict CSP, no inline script or style, nothing from another origin, no storage API")
    func filesAndHeaders() async throws {
        try await withAdminAPI(tls: true) { api in
            let folder = ConsoleBrowserTests.repository.appendingPathComponent("Sources/GatewayApp/Resources/console")
            for file in Self.files {
                let answer = try await api.send("GET", "/console/\(file)", as: nil)
                #expect(answer.status == 200, "\(file)")
                let committed = try Data(contentsOf: folder.appendingPathComponent(file.isEmpty ? "console.html" : file))
                let asCommitted = answer.body == Array(committed)
                #expect(asCommitted, "\(file) is served as committed")
                let policy = answer.header("Content-Security-Policy") ?? ""
                for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"] {
                    #expect(policy.contains(directive), "\(file): \(directive)")
                }
                #expect(!policy.contains("unsafe"), "\(file): no unsafe-inline or unsafe-eval")
                #expect(answer.header("X-Content-Type-Options") == "nosniff")
                #expect(answer.header("X-Frame-Options") == "DENY")
                #expect(answer.header("Cache-Control") == "no-store")
                let text = answer.text
                // The CSP would block them anyway; the files must not need them.
                #expect(!text.contains("localStorage") && !text.contains("sessionStorage") && !text.contains("document.cookie"), "\(file): no storage API")
                #expect(!text.contains("innerHTML") && !text.contains("eval("), "\(file): no markup from strings")
                #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "\(file): nothing from another origin")
                if file.isEmpty {
                    #expect(answer.header("Content-Type") == "text/html; charset=utf-8")
                    #expect(!text.contains("style=") && !text.contains(/\ on[a-z]+=/), "no inline style or handler")
                    let scripts = text.components(separatedBy: "<script").dropFirst()
                    #expect(scripts.allSatisfy { $0.hasPrefix(" type=\"module\" src=") && $0.contains("></script>") }, "only external module scripts")
                }
            }
            #expect(try await api.send("GET", "/console", as: nil).header("Location") == "/console/")
            #expect(try await api.send("GET", "/console/none.js", as: nil).status == 404)
            #expect(try await api.send("GET", "/console/../admin/v1/merchants", as: nil).status == 404)
            #expect(try await api.send("POST", "/console/", as: nil).status == 405)
        }
    }

    @Test("a change whose Origin is another site's, or null, or whose Sec-Fetch-Site is cross-site, is refused 403 and audited; the console's own origin passes")
    func crossSiteChangesRefused() async throws {
        try await withAdminAPI(tls: true) { api in
            let own = "https://localhost:\(api.server.port)"
            for headers in [[("Origin", "https://evil.example")], [("Origin", "null")], [("Origin", "https://localhost:1")], [("Sec-Fetch-Site", "cross-site")],
                [("Origin", own), ("Sec-Fetch-Site", "same-site")]]
            {
                let refused = try await api.send(
                    "POST", "/admin/v1/merchants/m3/suspend", as: .operator, headers: [("If-Match", try await api.etag("m3")), ("Host", "localhost:\(api.server.port)")] + headers)
                #expect(refused.status == 403, "\(headers)")
                #expect(refused.errorCode == "GATEWAY_FORBIDDEN")
                #expect(try await api.auditRecords(refused.header("Klarna-Gateway-Request-Id")).map(\.0) == ["refusal"])
            }
            #expect(try await api.send("GET", "/admin/v1/merchants/m3", as: .viewer).json["status"]?.stringValue == "active")
            // Reads are not checked, and the console's own origin may change.
            #expect(try await api.send("GET", "/admin/v1/merchants/m3", as: .viewer, headers: [("Origin", "https://evil.example")]).status == 200)
            let allowed = try await api.send(
                "POST", "/admin/v1/merchants/m3/suspend", as: .operator,
                headers: [("If-Match", try await api.etag("m3")), ("Host", "localhost:\(api.server.port)"), ("Origin", own), ("Sec-Fetch-Site", "same-origin")])
            #expect(allowed.status == 200)
        }
    }
}
