import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import GatewayWebhooks
import GRDB
import Testing

/// The web console in a real headless Chromium (bin/console-browser-check, selenium against Debian's chromium and
/// chromium-driver) over the admin listener's real TLS, at a desktop and a phone width. Its tests run one at a time
/// (the certificate login's in ConsoleCertificateLoginTests.swift): the certificate login installs a managed policy,
/// which every Chromium on the machine reads, and each browser run is heavy for two cores.
@Suite("Console in Chromium", .serialized)
struct ConsoleBrowserTests {
    /// The repository, for bin/ and for the screenshots under .build/.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Whether the browser, its driver, selenium and certutil are here.
    static var browserInstalled: Bool {
        ["/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/certutil", "/usr/lib/python3/dist-packages/selenium/__init__.py"]
            .allSatisfy { FileManager.default.fileExists(atPath: $0) }
    }
    /// Whether a missing browser fails the test instead of skipping it (`bin/test` sets it).
    static var browserRequired: Bool { ProcessInfo.processInfo.environment["KGW_REQUIRE_CHROMIUM"] == "1" }

    @Test(
        "log in, read the overview, find a merchant among 10,000, suspend it (its next call is refused) and pin a release, import a CSV and remove a merchant, find a refused call by request id, every page, log out; at 1280 and 390 px; no secret in any page, cookie, storage or console log; a cross-site POST is refused; a viewer is offered no change; a security account manages admins and partners",
        .enabled(if: browserInstalled || browserRequired, "needs chromium, chromium-driver, python3-selenium and libnss3-tools: bin/test installs them"))
    func consoleInChromium() async throws {
        try #require(Self.browserInstalled, "KGW_REQUIRE_CHROMIUM is set but chromium, chromium-driver, python3-selenium or certutil is missing; bin/test installs them")
        // m3 alone has a tight merchant limit, so that the rate-limits page has a merchant throttled now to show: one
        // call per 1,000 s, longer than both browser runs together (at most 300 s each), so that m3 is still throttled
        // when the second run's page reads it. At one per 100 s, a first run of 60–100 s under a busy machine's load
        // left the second run refusing m3 on the first run's admission, which ran out while that page was read.
        let limits = """
            plans:
              tight:
                merchant: {default: {rate: 0.001, burst: 1}}
            assign:
              merchants: {m3: tight}
            """
        try await withAdminAPI(rateLimits: limits, tls: true) { api in
            let authority = try #require(api.tlsAuthority)
            // The merchant to suspend is found by search among 10,000 (ids c00001…; accounts that no id search matches).
            let bulk = (1...10_000).map { number in
                MerchantRecord(id: String(format: "c%05d", number), partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:BULK\(number)")!)
            }
            try await api.gw.admin.store.saveMerchants(bulk, secrets: [])
            try await api.gw.waitForReload()
            let client = api.gw.client()
            // Traffic for the overview, and one refused call per width for the audit explorer to find.
            #expect(try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).status == 200)
            // Two releases' first days in each environment, for the calendar on the releases page.
            let calendar = api.gw.service.runtime.snapshots.current.releases.releases.suffix(2).flatMap { release in
                [("test", release.test), ("live", release.live)].compactMap { environment, day in day.map { "\(release.id) \(environment) \($0)" } }
            }.joined(separator: ";")
            // An event with a dead delivery for the webhooks page, replayed there by the operator; its body's marker
            // must be in no page (the console shows a body's size and hash only).
            let bodyMarker = AdminAPIWebhookTests.random("PLANTEDconsoleBody")
            try await Self.storeDeadEvent(api, bodyMarker: bodyMarker)
            for (width, merchant) in [(1280, "c07321"), (390, "c04242")] {
                // m3 throttled now: its second call (the first spent its burst of 1) is refused. Per width, since the
                // policies page applies new rate limits (m3's plan kept), which may give the limiter fresh rooms.
                var throttled = try await client.send("GET", "/v2/accounts/m3" + AuditTrailTests.transaction, headers: [api.gw.bearer("orders")])
                if throttled.errorCode != "GATEWAY_RATE_LIMITED" {
                    throttled = try await client.send("GET", "/v2/accounts/m3" + AuditTrailTests.transaction, headers: [api.gw.bearer("orders")])
                }
                #expect(throttled.errorCode == "GATEWAY_RATE_LIMITED", "m3 is throttled")
                // Two rate-limit versions the policies page applies, m3's plan kept, the caller's rate telling them apart.
                let versions = [width * 10, width * 10 + 1].map { limits + "\ncaller: {rate: \($0), burst: \($0)}\n" }
                let refused = try await client.send("GET", "/v2/accounts/nobody" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
                #expect(refused.status >= 400)
                let callID = try #require(refused.header("Klarna-Gateway-Request-Id"))
                await api.gw.audit.flush()

                let out = Self.repository.appendingPathComponent(".build/console-screenshots")
                let run = try await ChildProcess.run(
                    "/usr/bin/python3", [Self.repository.appendingPathComponent("bin/console-browser-check").path],
                    environment: [
                        "KGW_CONSOLE_URL": "https://localhost:\(api.server.port)/console/", "KGW_CONSOLE_CA": authority.caCertificatePEM,
                        "KGW_CONSOLE_TOKEN": api.tokens[.operator] ?? "", "KGW_CONSOLE_WIDTH": String(width), "KGW_CONSOLE_MERCHANT": merchant,
                        "KGW_CONSOLE_REQUEST_ID": callID, "KGW_CONSOLE_OUT": out.path, "KGW_CONSOLE_THROTTLED": "m3",
                        "KGW_CONSOLE_CALENDAR": calendar, "KGW_CONSOLE_PARTNER": "acq",
                        "KGW_CONSOLE_RATE_LIMITS": JSONValue.array(versions.map(JSONValue.string)).text,
                    ], directory: FileManager.default.temporaryDirectory, timeout: .seconds(300))
                let report = try JSONValue.parse(Array((run.stdout.split(separator: "\n").last.map(String.init) ?? "{}").utf8))
                #expect(run.status == 0, "the browser run at \(width) px failed:\n\(run.stdout.suffix(6000))\n\(run.stderr.suffix(3000))")
                #expect(report["ok"]?.boolValue == true)

                // The suspension made in the browser is in force, and in the audit trail as intent and outcome.
                let merchantNow = try await api.send("GET", "/admin/v1/merchants/\(merchant)", as: .viewer)
                #expect(merchantNow.json["status"]?.stringValue == "suspended", "\(merchant) at \(width) px")
                #expect(merchantNow.json["release"]?.stringValue == report["pinned_release"]?.stringValue && report["pinned_release"] != nil)
                try await api.gw.waitForReload()
                let next = try await client.send("GET", "/v2/accounts/\(merchant)" + AuditTrailTests.transaction, headers: [api.gw.bearer("orders")])
                #expect(next.errorCode == "GATEWAY_MERCHANT_SUSPENDED", "the merchant's next call is refused")
                let suspendID = report["suspend_request_id"]?.stringValue
                #expect(suspendID != nil)
                let records = try await api.auditRecords(suspendID)
                #expect(records.map(\.0) == ["intent", "outcome"])
                #expect(records.allSatisfy { $0.1 == "admin:operator-admin" && $0.4 == "admin.suspendMerchant" && $0.5 == merchant })
                // The cross-site POST the browser sent (a resume of the same merchant) changed nothing and is recorded.
                await api.gw.audit.flush()
                let crossSite = try await DatabaseQueue(path: api.gw.auditPath).read { db in
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM audit_records WHERE phase = 'refusal' AND gateway_error_code = 'GATEWAY_FORBIDDEN' AND path = ?",
                        arguments: ["/admin/v1/merchants/\(merchant)/resume"])
                }
                #expect(crossSite == 1)
                // The merchant added in the browser, then given a second group there: in the store as changed, and in
                // the trail as the operator's addition and change.
                let added = try await api.gw.admin.store.merchant(id: "console-m-\(width)")
                #expect(added?.groups == ["eu", "nordics"] && added?.partnerID == "acq", "\(String(describing: added))")
                let merchantChanges = try await DatabaseQueue(path: api.gw.auditPath).read { db in
                    try String.fetchAll(
                        db, sql: "SELECT operation_id FROM audit_records WHERE phase = 'outcome' AND merchant_id = ? AND caller_id = 'admin:operator-admin' ORDER BY seq",
                        arguments: ["console-m-\(width)"])
                }
                #expect(merchantChanges == ["admin.addMerchant", "admin.updateMerchant"])
                // The CSV import made in the browser: the file with problems recorded as a refusal after its intent
                // and nothing of it imported; the good file's merchants in the store, the one removed there gone, and
                // the import and the removal in the trail as the operator's.
                #expect(try await api.auditRecords(report["import_refusal_id"]?.stringValue).map { [$0.0, $0.3 ?? "-"] } == [["intent", "-"], ["refusal", "GATEWAY_BAD_REQUEST"]])
                #expect(try await api.auditRecords(report["import_request_id"]?.stringValue).map { [$0.0, $0.4 ?? "-"] } == [["intent", "admin.importMerchants"], ["outcome", "admin.importMerchants"]])
                #expect(try await api.gw.admin.store.merchant(id: "console-imp-\(width)-1")?.partnerID == "acq")
                #expect(try await api.gw.admin.store.merchant(id: "console-imp-\(width)-2") == nil, "removed in the browser")
                #expect(try await api.gw.admin.store.merchant(id: "console-imp-\(width)-3") == nil, "the refused file imported nothing")
                let removal = try await api.auditRecords(report["remove_request_id"]?.stringValue)
                #expect(removal.map(\.0) == ["intent", "outcome"])
                #expect(removal.allSatisfy { $0.1 == "admin:operator-admin" && $0.4 == "admin.removeMerchant" && $0.5 == "console-imp-\(width)-2" })
                // The policy proposals made in the browser: the invalid one recorded as a refusal; nothing applied.
                #expect(try await api.auditRecords(report["policy_refusal_id"]?.stringValue).map(\.3) == ["GATEWAY_BAD_REQUEST"])
                #expect(api.gw.service.runtime.snapshots.current.access.callers["checkout"] != nil)
                // The two rate-limit versions applied in the browser and the rollback to the first: stored in that order
                // by the operator, audited, and the first in force again.
                let applies = report["policy_apply_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
                #expect(applies.count == 2)
                for id in applies {
                    #expect(try await api.auditRecords(id).map { [$0.0, $0.4 ?? "-"] } == [["intent", "admin.applyRateLimitPolicy"], ["outcome", "admin.applyRateLimitPolicy"]])
                }
                let rollback = try await api.auditRecords(report["policy_rollback_id"]?.stringValue)
                #expect(rollback.map(\.0) == ["intent", "outcome"] && rollback.allSatisfy { $0.1 == "admin:operator-admin" && $0.4 == "admin.rollBackRateLimitPolicy" })
                let stored = try await api.gw.admin.policyHistory(.rateLimits, limit: 3)
                #expect(stored.map(\.yaml) == [versions[0], versions[1], versions[0]] && stored.allSatisfy { $0.appliedBy == "admin:operator-admin" })
                try await api.gw.waitForReload()
                #expect(api.gw.service.runtime.snapshots.current.rateLimits.caller?.rate == Double(width * 10))
                // The caller added in the browser exists with a token; the page showed the token once (its tail only
                // is reported back, and the stored hash is among the secrets searched for below).
                #expect(try await api.gw.admin.store.caller(id: "console-caller-\(width)")?.tokenHash != nil)
                #expect(report["caller_token_tail"]?.stringValue?.count == 6)
                // The roll-out applied after its preview and rolled back in the browser: none left, both in the history.
                #expect(try await api.gw.admin.store.rollouts().isEmpty)
                let actions = try await api.gw.admin.store.adminEvents().filter { $0.actor == "admin:operator-admin" && $0.isReleaseChange }.map(\.action)
                #expect(actions.suffix(2) == ["releases.rollout", "releases.rollback"], "\(actions)")
                // The replay made on the webhooks page: the operator's intent and outcome, the delivery due again.
                let replay = try await api.auditRecords(report["replay_request_id"]?.stringValue)
                #expect(replay.map(\.0) == ["intent", "outcome"] && replay.allSatisfy { $0.1 == "admin:operator-admin" && $0.4 == "admin.replayWebhookEvent" }, "\(replay)")
                #expect(try await api.gw.admin.webhookStore.webhookDeliveries(eventID: "console-event").first?.state == .pending)
                // Dead again, for the next width's replay.
                try await Self.storeDeadEvent(api, bodyMarker: bodyMarker, again: true)

                // Every page's DOM, input values, cookies, storage and console log, searched for every secret.
                let dump = try String(contentsOf: out.appendingPathComponent("dump.txt"), encoding: .utf8)
                // Bools, so that a failure does not print the dump (and whatever it holds) into the test log.
                let holdsPages = dump.contains("Requests/s")
                #expect(holdsPages, "the dump holds the pages")
                try await api.expectNoSecret(in: dump + run.stdout + run.stderr)
                let bodyShown = dump.contains(bodyMarker)
                #expect(!bodyShown, "an event's body is in a page")
                for page in ["login", "overview", "merchants", "merchant", "merchant-added", "merchants-import", "merchant-removed", "audit", "callers", "releases", "rate-limits", "policies", "webhooks"] {
                    #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("\(page)-\(width).png").path), "screenshot \(page) at \(width) px")
                }
            }

            // A viewer is shown the merchant read-only and changes nothing.
            let out = Self.repository.appendingPathComponent(".build/console-screenshots")
            let viewer = try await ChildProcess.run(
                "/usr/bin/python3", [Self.repository.appendingPathComponent("bin/console-browser-check").path],
                environment: [
                    "KGW_CONSOLE_URL": "https://localhost:\(api.server.port)/console/", "KGW_CONSOLE_CA": authority.caCertificatePEM,
                    "KGW_CONSOLE_TOKEN": api.tokens[.viewer] ?? "", "KGW_CONSOLE_ROLE": "viewer", "KGW_CONSOLE_WIDTH": "390",
                    "KGW_CONSOLE_MERCHANT": "c00001", "KGW_CONSOLE_REQUEST_ID": "-", "KGW_CONSOLE_OUT": out.path,
                ], directory: FileManager.default.temporaryDirectory, timeout: .seconds(300))
            #expect(viewer.status == 0, "the viewer's browser run failed:\n\(viewer.stdout.suffix(6000))\n\(viewer.stderr.suffix(3000))")
            #expect(try await api.send("GET", "/admin/v1/merchants/c00001", as: .viewer).json["status"]?.stringValue == "active")
            #expect(try await api.gw.admin.store.rollouts().isEmpty)
            let dump = try String(contentsOf: out.appendingPathComponent("dump.txt"), encoding: .utf8)
            let readOnlyShown = dump.contains("Your role is viewer")
            #expect(readOnlyShown, "the viewer is told changes need another role")
            try await api.expectNoSecret(in: dump + viewer.stdout + viewer.stderr)
            try await client.close()
            try await Self.securityRun(api, authority: authority)
        }
    }

    /// Stores the event `console-event` (m1's) with a delivery to `console-sink` that ran out of attempts; with
    /// `again`, marks the replayed delivery dead once more.
    static func storeDeadEvent(_ api: AdminAPIHarness, bodyMarker: String, again: Bool = false) async throws {
        let store = try api.gw.admin.webhookStore
        if !again {
            try await api.gw.admin.addWebhookDestination(name: "console-sink", url: "http://127.0.0.1:9/sink", secret: nil, clientCertificatePEM: nil, clientKeyPEM: nil)
            let account = try await api.gw.admin.showMerchant(id: "m1").account.rawValue
            _ = try await store.saveWebhookEvents([
                NewWebhookEvent(
                    event: WebhookEventRecord(
                        eventID: "console-event", partnerID: "acq", signingKeyID: "k1", eventType: "payment.transaction.captured", account: account,
                        merchantID: "m1", receivedAtMicros: UTCTime.nowMicros(), state: .pending, body: Array(#"{"marker":"\#(bodyMarker)"}"#.utf8)),
                    destinations: ["console-sink"])
            ])
        }
        let attempt = (try await store.webhookAttempts(eventID: "console-event").map(\.attempt).max() ?? 0) + 1
        try await store.completeWebhookDeliveries([
            WebhookDeliveryOutcome(
                eventID: "console-event", destination: "console-sink", nodeID: "console-node", attempt: attempt, state: .dead, nextAttemptMicros: 0, status: nil,
                error: "connection refused", timeMicros: UTCTime.nowMicros())
        ])
    }

    /// The security account's walk (after the others, since it gives the data plane's partner a certificate the
    /// simulator does not know): an admin added and removed, a partner's credentials uploaded and its settings changed,
    /// a partner in use refused removal and a spare one removed; every change in the store and the trail as the
    /// security admin's, and no uploaded secret in any page, input, the report, an answer, the log or the trail.
    static func securityRun(_ api: AdminAPIHarness, authority: TestPKI) async throws {
        let spareKey = "klarna_test_api_SPARE" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let spare = try TestPKI(name: "spare partner CA").issueClient(commonName: "spare")
        _ = try await api.gw.admin.addPartner(NewPartner(
            id: "spare", environment: .test, apiKey: Secret(spareKey), certificatePEM: spare.certificatePEM, clientKeyPEM: Secret(spare.privateKeyPEM),
            baseURL: "https://localhost:1"))
        let newKey = "klarna_test_api_CONSOLE" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let identity = try TestPKI(name: "console upload CA").issueClient(commonName: "acq-console")
        let before = try #require(try await api.gw.admin.store.partner(id: "acq"))
        let adminFingerprint = (0..<64).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
        let hookSecret = AdminAPIWebhookTests.random("whsec_PLANTEDconsoleHook")
        let hookSecret2 = AdminAPIWebhookTests.random("PLANTEDconsoleHookReplaced")
        let keySecret = AdminAPIWebhookTests.random("PLANTEDconsoleKey")
        let out = repository.appendingPathComponent(".build/console-screenshots")
        let run = try await ChildProcess.run(
            "/usr/bin/python3", [repository.appendingPathComponent("bin/console-browser-check").path],
            environment: [
                "KGW_CONSOLE_URL": "https://localhost:\(api.server.port)/console/", "KGW_CONSOLE_CA": authority.caCertificatePEM,
                "KGW_CONSOLE_TOKEN": api.tokens[.security] ?? "", "KGW_CONSOLE_ROLE": "security", "KGW_CONSOLE_WIDTH": "390",
                "KGW_CONSOLE_MERCHANT": "c00001", "KGW_CONSOLE_REQUEST_ID": "-", "KGW_CONSOLE_OUT": out.path, "KGW_CONSOLE_PARTNER": "acq",
                "KGW_CONSOLE_NEW_API_KEY": newKey, "KGW_CONSOLE_NEW_CERT": identity.certificatePEM, "KGW_CONSOLE_NEW_KEY": identity.privateKeyPEM,
                "KGW_CONSOLE_NEW_FINGERPRINT": try ClientCertificate(pem: identity.certificatePEM).fingerprint,
                "KGW_CONSOLE_BUSY_PARTNER": "acq_live", "KGW_CONSOLE_SPARE_PARTNER": "spare",
                "KGW_CONSOLE_ADMIN_FINGERPRINT": adminFingerprint, "KGW_CONSOLE_HOOK_SECRET": hookSecret, "KGW_CONSOLE_HOOK_SECRET_2": hookSecret2, "KGW_CONSOLE_KEY_SECRET": keySecret,
            ], directory: FileManager.default.temporaryDirectory, timeout: .seconds(300))
        let report = try JSONValue.parse(Array((run.stdout.split(separator: "\n").last.map(String.init) ?? "{}").utf8))
        #expect(run.status == 0, "the security account's browser run failed:\n\(run.stdout.suffix(6000))\n\(run.stderr.suffix(3000))")

        // The admin added there (its token shown once: the report has its tail only) and removed there.
        #expect(report["admin_token_tail"]?.stringValue?.count == 6)
        #expect(try await api.gw.admin.listAdmins().contains { $0.name == "console-admin-390" } == false)
        await api.gw.audit.flush()
        let adminChanges = try await DatabaseQueue(path: api.gw.auditPath).read { db in
            try String.fetchAll(
                db, sql: """
                    SELECT operation_id FROM audit_records WHERE phase = 'outcome' AND caller_id = 'admin:security-admin'
                    AND operation_id IN ('admin.addAdmin', 'admin.removeAdmin') ORDER BY seq
                    """)
        }
        #expect(adminChanges == ["admin.addAdmin", "admin.removeAdmin", "admin.addAdmin"], "\(adminChanges)")
        #expect(try await api.auditRecords(report["admin_remove_request_id"]?.stringValue).map(\.0) == ["intent", "outcome"])
        // The certificate-only admin added there: no token, its fingerprint bound.
        let certificateAdmin = try await api.gw.admin.listAdmins().first { $0.name == "console-cert-390" }
        #expect(certificateAdmin?.hasToken == false && certificateAdmin?.certificateFingerprint == adminFingerprint && certificateAdmin?.role == .operator)
        #expect(try await api.auditRecords(report["cert_admin_request_id"]?.stringValue).map(\.0) == ["intent", "outcome"])

        // The webhook changes made there: the destination added and removed, the key sealed opening to what was typed,
        // the rotation at Klarna; each the security admin's intent and outcome.
        #expect(try await api.gw.admin.webhookStore.webhookDestinations().contains { $0.name == "console-hook" } == false)
        let directory = try await CredentialLoader(store: api.gw.admin.store, sealer: api.gw.admin.sealer).loadWebhookDirectory(routesPath: nil)
        #expect(directory.keys.secret(partner: "acq", keyID: "console-key")?.exposedValue == keySecret)
        #expect(try await api.gw.admin.listWebhookKeys(partnerID: "acq").count == 2, "the key added and the rotated one")
        for (key, operation) in [
            ("destination_add_request_id", "admin.addWebhookDestination"), ("destination_replace_request_id", "admin.replaceWebhookDestination"),
            ("destination_remove_request_id", "admin.removeWebhookDestination"),
            ("key_add_request_id", "admin.addWebhookKey"), ("rotate_request_id", "admin.rotateWebhookKey"),
        ] {
            let records = try await api.auditRecords(report[key]?.stringValue)
            #expect(records.map(\.0) == ["intent", "outcome"] && records.allSatisfy { $0.1 == "admin:security-admin" && $0.4 == operation }, "\(key): \(records)")
        }

        // The credentials uploaded there: sealed as the next versions, opening to what was typed in.
        let after = try #require(try await api.gw.admin.store.partner(id: "acq"))
        #expect(after.apiKey.version == before.apiKey.version + 1 && after.clientKey.version == before.clientKey.version + 1)
        let secrets = try await api.gw.admin.store.sealedSecrets()
        #expect(try secrets.first { $0.credential == after.apiKey }.map { try api.gw.admin.sealer.open($0).exposedValue } == newKey)
        #expect(try secrets.first { $0.credential == after.clientKey }.map { try api.gw.admin.sealer.open($0).exposedValue.trimmingCharacters(in: .whitespacesAndNewlines) }
            == identity.privateKeyPEM.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(after.clientCertificatePEM.contains(identity.certificatePEM.split(separator: "\n")[1]))
        // The change made there, and the removals.
        #expect(after.baseURL == "https://localhost:1/console" && after.defaultRelease == report["default_release"]?.stringValue && after.defaultRelease != nil)
        #expect(try await api.gw.admin.store.partner(id: "acq_live") != nil, "a partner in use is kept")
        #expect(try await api.gw.admin.store.partner(id: "spare") == nil, "the spare partner is removed")
        for (key, operation, last) in [
            ("upload_request_id", "admin.replacePartnerCredentials", "outcome"), ("change_request_id", "admin.updatePartner", "outcome"),
            ("spare_remove_request_id", "admin.removePartner", "outcome"), ("busy_remove_request_id", "admin.removePartner", "refusal"),
        ] {
            let records = try await api.auditRecords(report[key]?.stringValue)
            #expect(records.map(\.0) == ["intent", last], "\(key)")
            #expect(records.allSatisfy { $0.1 == "admin:security-admin" && $0.4 == operation }, "\(key)")
        }

        // No uploaded or planted secret in any page, input, cookie, storage, the console log or the report; nor in an
        // answer, the log or the audit store (searched by the partner credential tests' own search).
        let dump = try String(contentsOf: out.appendingPathComponent("dump.txt"), encoding: .utf8)
        let holdsPages = dump.contains("Upload credentials")
        #expect(holdsPages, "the dump holds the partner page")
        let keyBody = identity.privateKeyPEM.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let planted = [
            newKey, spareKey, secretPart(ofPrivateKeyPEM: identity.privateKeyPEM), String(keyBody.suffix(40)),
            secretPart(ofPrivateKeyPEM: spare.privateKeyPEM), hookSecret, hookSecret2, keySecret,
        ]
        for secret in planted {
            let leaked = (dump + run.stdout + run.stderr).contains(secret)
            #expect(!leaked, "an uploaded secret is in a page, an input, the console log or the report")
        }
        try await api.expectNoSecret(in: dump + run.stdout + run.stderr)
        try await AdminAPIPartnerCredentialTests.expectNowhere(planted, after: [], in: api, recordedAs: "admin.replacePartnerCredentials")
        for page in ["admins", "webhooks", "partner", "partner-removed"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("\(page)-390.png").path), "screenshot \(page)")
        }
    }
}
