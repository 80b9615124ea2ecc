import Foundation
@testable import GatewayApp
import GatewayAudit
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 18's first slice: the admin API on a real admin listener over a real store and audit trail.
@Suite("Admin API")
struct AdminAPITests {
    /// An entity tag of the right shape that no merchant has.
    static let staleETag = "\"" + String(repeating: "0", count: 32) + "\""

    @Test("each role's rights: viewer reads and cannot suspend, operator suspends; a wrong, missing, caller or removed token is 401")
    func rolesAndTokens() async throws {
        try await withAdminAPI { api in
            let list = try await api.send("GET", "/admin/v1/merchants", as: .viewer)
            #expect(list.status == 200)
            #expect(list.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["m1", "m2", "m3", "m4", "m_live"])
            let etag = try await api.etag("m3")

            let refused = try await api.send("POST", "/admin/v1/merchants/m3/suspend", as: .viewer, headers: [("If-Match", etag)])
            #expect(refused.status == 403)
            #expect(refused.errorCode == "GATEWAY_FORBIDDEN")
            #expect(refused.json["error_id"]?.stringValue == refused.header("Klarna-Gateway-Request-Id"))
            #expect(refused.json["error_type"]?.stringValue == "RESOURCE_ERROR")
            #expect(try await api.gw.admin.showMerchant(id: "m3").status == .active)

            let suspended = try await api.send("POST", "/admin/v1/merchants/m3/suspend", as: .operator, headers: [("If-Match", etag)])
            #expect(suspended.status == 200)
            #expect(suspended.json["status"]?.stringValue == "suspended")
            #expect(try await api.gw.admin.showMerchant(id: "m3").status == .suspended)
            // Security has every right operator has.
            let resumed = try await api.send(
                "POST", "/admin/v1/merchants/m3/resume", as: .security, headers: [("If-Match", try #require(suspended.header("ETag")))])
            #expect(resumed.status == 200)

            let wrong = try await api.client.send("GET", "/admin/v1/merchants", headers: [("Authorization", "Bearer adm_kgw_0123456789abcdef_" + String(repeating: "A", count: 43))])
            #expect(wrong.status == 401)
            #expect(wrong.errorCode == "GATEWAY_UNAUTHENTICATED")
            #expect(try await api.send("GET", "/admin/v1/merchants", as: nil).status == 401)
            // A caller's token is not an admin token, even for a path that exists.
            let caller = try await api.client.send("GET", "/admin/v1/merchants", headers: [api.gw.bearer("checkout")])
            #expect(caller.status == 401)
            // And an admin token is not a caller token: the data plane refuses it.
            let proxy = api.gw.client()
            let call = try await proxy.send(
                "GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [("Authorization", "Bearer \(api.tokens[.security] ?? "")")])
            try await proxy.close()
            #expect(call.errorCode == "GATEWAY_UNAUTHENTICATED")
            // A tampered secret half of a real admin token.
            let real = try #require(api.tokens[.security])
            let tampered = try await api.client.send("GET", "/admin/v1/partners", headers: [("Authorization", "Bearer " + real.dropLast() + (real.hasSuffix("A") ? "B" : "A"))])
            #expect(tampered.status == 401)
            try await api.gw.admin.removeAdmin(name: "viewer-admin")
            #expect(try await api.send("GET", "/admin/v1/merchants", as: .viewer).status == 401)
            // Unknown paths and methods, once authenticated.
            #expect(try await api.send("GET", "/admin/v1/nothing", as: .operator).errorCode == "GATEWAY_NOT_FOUND")
            let method = try await api.send("PUT", "/admin/v1/merchants/m1", as: .operator)
            #expect(method.status == 405)
            #expect(method.header("Allow") == "GET, PATCH, DELETE")
            // A literal segment wins over a template's, as in OpenAPI: this is the import, not a merchant named "import".
            #expect(try await api.send("GET", "/admin/v1/merchants/import", as: .operator).header("Allow") == "POST")
            #expect(try await api.send("GET", "/admin/v1/merchants/nope", as: .operator).status == 404)
        }
    }

    @Test("merchants page by cursor and search by id or account among 100,000, fast")
    func paginationAndSearch() async throws {
        try await withAdminAPI { api in
            let merchants = (1...100_000).map { number in
                let id = String(format: "p%06d", number)
                return MerchantRecord(id: id, partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:PG\(id)")!, groups: ["bulk"])
            }
            try await api.gw.admin.store.saveMerchants(merchants, secrets: [])

            var seen: [String] = []
            var cursor: String?
            for _ in 0..<3 {
                let page = try await api.send("GET", "/admin/v1/merchants?limit=500" + (cursor.map { "&after=\($0)" } ?? ""), as: .viewer)
                #expect(page.status == 200)
                let ids = page.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                #expect(ids.count == 500)
                seen += ids
                cursor = try #require(page.json["next_cursor"]?.stringValue)
            }
            // Byte order: the harness's m… merchants come before the p… ones.
            let expected = ["m1", "m2", "m3", "m4", "m_live"] + (1...1495).map { String(format: "p%06d", $0) }
            #expect(seen.elementsEqual(expected), "pages are not the merchants in id order")
            #expect(Set(seen).count == 1500)

            // The last page says so.
            let last = try await api.send("GET", "/admin/v1/merchants?after=p099990", as: .viewer)
            #expect(last.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == (99_991...100_000).map { String(format: "p%06d", $0) })
            #expect(last.json["next_cursor"] == .null)

            // Search by a piece of the id, and by a piece of the account (case-insensitive); timed on a shared machine.
            let started = ContinuousClock.now
            let byID = try await api.send("GET", "/admin/v1/merchants?q=p07777", as: .viewer)
            let elapsed = ContinuousClock.now - started
            #expect(byID.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == (0...9).map { "p07777\($0)" })
            // Printed, not asserted: a time on a shared machine proves nothing either way (docs/admin-api.md quotes it).
            print("a search over 100,000 merchants answered in \(elapsed)")

            // A 10% roll-out preview walks the snapshot's 100,000 merchants: the hash-chosen share, timed too.
            try await api.gw.waitForReload()
            let rollout = Rollout(release: "r8", percent: 10, group: "bulk")
            let chosen = merchants.filter { rollout.includes($0) }.map(\.id)
            let previewStarted = ContinuousClock.now
            let preview = try await api.send("GET", "/admin/v1/releases/rollout-preview?environment=test&release=r8&percent=10&group=bulk&limit=500", as: .viewer)
            let previewElapsed = ContinuousClock.now - previewStarted
            #expect(preview.json["merchants"]?.intValue == 100_004)
            #expect(preview.json["moving"]?.intValue == chosen.count)
            #expect((9_000...11_000).contains(chosen.count))
            #expect(preview.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == Array(chosen.prefix(500)))
            print("a roll-out preview over 100,000 merchants answered in \(previewElapsed)")
            let byAccount = try await api.send("GET", "/admin/v1/merchants?q=pgp012345", as: .viewer)
            #expect(byAccount.json["merchants"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["p012345"])
            // LIKE's wildcards are searched for, not obeyed.
            #expect(try await api.send("GET", "/admin/v1/merchants?q=%25", as: .viewer).json["merchants"]?.arrayValue?.count == 0)
            #expect(try await api.send("GET", "/admin/v1/merchants?limit=0", as: .viewer).errorCode == "GATEWAY_BAD_REQUEST")
            #expect(try await api.send("GET", "/admin/v1/merchants?limit=501", as: .viewer).errorCode == "GATEWAY_BAD_REQUEST")
        }
    }

    @Test("changes need If-Match: a stale one is 412 with the current ETag, a missing one 428; a release pin is checked")
    func conditionalChanges() async throws {
        try await withAdminAPI { api in
            let first = try await api.etag("m4")
            let missing = try await api.send("POST", "/admin/v1/merchants/m4/suspend", as: .operator)
            #expect(missing.status == 428)
            #expect(missing.errorCode == "GATEWAY_PRECONDITION_REQUIRED")
            let suspended = try await api.send("POST", "/admin/v1/merchants/m4/suspend", as: .operator, headers: [("If-Match", first)])
            #expect(suspended.status == 200)
            let second = try #require(suspended.header("ETag"))
            #expect(second != first)
            let stale = try await api.send("POST", "/admin/v1/merchants/m4/resume", as: .operator, headers: [("If-Match", first)])
            #expect(stale.status == 412)
            #expect(stale.errorCode == "GATEWAY_PRECONDITION_FAILED")
            #expect(stale.header("ETag") == second)
            #expect(try await api.gw.admin.showMerchant(id: "m4").status == .suspended)
            // A change by the CLI in between makes the API's ETag stale too.
            _ = try await api.gw.admin.setMerchantStatus(id: "m4", .active)
            #expect(try await api.send("POST", "/admin/v1/merchants/m4/suspend", as: .operator, headers: [("If-Match", second)]).status == 412)

            let current = try await api.etag("m4")
            let pinned = try await api.send("PUT", "/admin/v1/merchants/m4/release", as: .operator, headers: [("If-Match", current)], body: #"{"release":"r5"}"#)
            #expect(pinned.status == 200)
            #expect(pinned.json["release"]?.stringValue == "r5")
            #expect(try await api.gw.admin.showMerchant(id: "m4").release == "r5")
            let pinnedTag = try #require(pinned.header("ETag"))
            let unknown = try await api.send("PUT", "/admin/v1/merchants/m4/release", as: .operator, headers: [("If-Match", pinnedTag)], body: #"{"release":"r99"}"#)
            #expect(unknown.errorCode == "GATEWAY_BAD_REQUEST")
            #expect(try await api.send("PUT", "/admin/v1/merchants/m4/release", as: .operator, headers: [("If-Match", pinnedTag)], body: "r5").status == 400)
            let cleared = try await api.send("PUT", "/admin/v1/merchants/m4/release", as: .operator, headers: [("If-Match", pinnedTag)], body: #"{"release":null}"#)
            #expect(cleared.status == 200)
            #expect(cleared.json["release"] == .null)
        }
    }

    @Test("a suspension through the API refuses the merchant's next call, a resume forwards it again; a revoked caller is refused")
    func changesTakeEffect() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            let path = "/v2/accounts/m1" + AuditTrailTests.transaction
            #expect(try await client.send("GET", path, headers: [api.gw.bearer("checkout")]).status == 200)
            let suspended = try await api.send("POST", "/admin/v1/merchants/m1/suspend", as: .operator, headers: [("If-Match", try await api.etag("m1"))])
            #expect(suspended.status == 200)
            try await api.gw.waitForReload()
            let refused = try await client.send("GET", path, headers: [api.gw.bearer("checkout")])
            #expect(refused.status == 403)
            #expect(refused.errorCode == "GATEWAY_MERCHANT_SUSPENDED")
            _ = try await api.send("POST", "/admin/v1/merchants/m1/resume", as: .operator, headers: [("If-Match", try #require(suspended.header("ETag")))])
            try await api.gw.waitForReload()
            #expect(try await client.send("GET", path, headers: [api.gw.bearer("checkout")]).status == 200)

            #expect(try await api.send("POST", "/admin/v1/callers/checkout/revoke", as: .viewer).status == 403)
            let revoked = try await api.send("POST", "/admin/v1/callers/checkout/revoke", as: .operator)
            #expect(revoked.status == 200)
            #expect(revoked.json["status"]?.stringValue == "revoked")
            #expect(try await api.send("POST", "/admin/v1/callers/nobody/revoke", as: .operator).status == 404)
            try await api.gw.waitForReload()
            #expect(try await client.send("GET", path, headers: [api.gw.bearer("checkout")]).errorCode == "GATEWAY_UNAUTHENTICATED")
            try await client.close()
        }
    }

    @Test("every change (intent and outcome) and every refusal is in the audit trail, named by request id; the chain verifies")
    func audited() async throws {
        try await withAdminAPI { api in
            let change = try await api.send("POST", "/admin/v1/merchants/m2/suspend", as: .operator, headers: [("If-Match", try await api.etag("m2"))])
            let records = try await api.auditRecords(change.header("Klarna-Gateway-Request-Id"))
            #expect(records.map(\.0) == ["intent", "outcome"])
            #expect(records.allSatisfy { $0.1 == "admin:operator-admin" && $0.4 == "admin.suspendMerchant" && $0.5 == "m2" })
            #expect(records.last?.2 == 200)

            let revoke = try await api.send("POST", "/admin/v1/callers/orders/revoke", as: .security)
            #expect(try await api.auditRecords(revoke.header("Klarna-Gateway-Request-Id")).map(\.0) == ["intent", "outcome"])

            let refusals: [(TestHTTPResponse, String, String?)] = [
                (try await api.send("POST", "/admin/v1/merchants/m2/resume", as: .viewer, headers: [("If-Match", "x")]), "GATEWAY_FORBIDDEN", "admin:viewer-admin"),
                (try await api.send("GET", "/admin/v1/merchants", as: nil), "GATEWAY_UNAUTHENTICATED", nil),
                (try await api.send("POST", "/admin/v1/merchants/m2/resume", as: .operator, headers: [("If-Match", Self.staleETag)]), "GATEWAY_PRECONDITION_FAILED", "admin:operator-admin"),
                (try await api.send("POST", "/admin/v1/merchants/m2/resume", as: .operator, headers: [("If-Match", "*")]), "GATEWAY_BAD_REQUEST", "admin:operator-admin"),
                (try await api.send("POST", "/admin/v1/merchants/m2/resume", as: .operator), "GATEWAY_PRECONDITION_REQUIRED", "admin:operator-admin"),
                (try await api.send("GET", "/admin/v1/merchants/ghost", as: .viewer), "GATEWAY_NOT_FOUND", "admin:viewer-admin"),
                (try await api.send("PUT", "/admin/v1/merchants/m2/release", as: .operator, body: String(repeating: " ", count: 70_000)), "GATEWAY_PAYLOAD_TOO_LARGE", nil),
            ]
            for (response, code, caller) in refusals {
                #expect(response.errorCode == code)
                let records = try await api.auditRecords(response.header("Klarna-Gateway-Request-Id"))
                #expect(records.count == 1 && records.first?.0 == "refusal" && records.first?.3 == code && records.first?.1 == caller, "\(code): \(records)")
            }
            // Reads are not changes: nothing recorded.
            let read = try await api.send("GET", "/admin/v1/partners", as: .viewer)
            #expect(try await api.auditRecords(read.header("Klarna-Gateway-Request-Id")).isEmpty)
            // A guessed token is refused and recorded, the guess itself is not.
            let guess = "adm_kgw_00000000000000ff_" + String(repeating: "G", count: 43)
            #expect(try await api.client.send("GET", "/admin/v1/callers", headers: [("Authorization", "Bearer " + guess)]).status == 401)
            await api.gw.audit.flush()
            #expect(try AuditVerifier.verify(path: api.gw.auditPath).isIntact)
            var stored = api.gw.logs.text
            for suffix in ["", "-wal"] {
                stored += String(decoding: FileManager.default.contents(atPath: api.gw.auditPath + suffix) ?? Data(), as: UTF8.self)
            }
            #expect(stored.contains("admin:operator-admin"), "the search below would find nothing anywhere")
            for secret in api.tokens.values.map({ String($0.suffix(43)) }) + [String(guess.suffix(43))] + api.gw.plantedSecrets {
                #expect(!stored.contains(secret), "a token or key is in the audit store or the log")
            }
        }
    }

    @Test("no secret in any answer: partner and merchant keys, the private key, caller tokens, admin tokens after creation")
    func noSecretsInAnswers() async throws {
        try await withAdminAPI { api in
            var answers: [TestHTTPResponse] = []
            for role in AdminRole.allCases {
                for path in ["/admin/v1/merchants", "/admin/v1/merchants?limit=2&q=m", "/admin/v1/merchants/m2", "/admin/v1/callers", "/admin/v1/partners", "/admin/v1/openapi.json"] {
                    answers.append(try await api.send("GET", path, as: role))
                }
            }
            answers.append(try await api.send("POST", "/admin/v1/merchants/m2/suspend", as: .operator, headers: [("If-Match", try await api.etag("m2"))]))
            answers.append(try await api.send("POST", "/admin/v1/callers/tester/revoke", as: .operator))
            answers.append(try await api.send("GET", "/admin/v1/merchants", as: nil, headers: [("Authorization", "Bearer " + (api.tokens[.operator] ?? "") + "x")]))
            let partners = answers.first { $0.json["partners"] != nil }
            #expect(partners?.json["partners"]?.arrayValue?.first?["client_certificate_fingerprint"]?.stringValue?.count == 64)
            let text = answers.map { response in response.text + response.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n") }.joined(separator: "\n")
            let adminSecrets = api.tokens.values.map { String($0.suffix(43)) }
            let storedHashes = try await api.gw.admin.listAdmins().map(\.tokenHash) + (try await api.gw.admin.listCallers().compactMap(\.tokenHash))
            for secret in api.gw.plantedSecrets + adminSecrets + storedHashes {
                #expect(!text.contains(secret), "a secret is in an admin API answer")
            }
            #expect(!text.contains("PRIVATE KEY"))
        }
    }

    @Test("repeated failures from one address are answered more and more slowly, and a success ends the wait")
    func backoff() async throws {
        let backoff = AdminBackoff(base: .milliseconds(200), ceiling: .seconds(2))
        try await withAdminAPI(backoff: backoff) { api in
            func timed(_ role: AdminRole?) async throws -> (Int, Duration) {
                let started = ContinuousClock.now
                let status = try await api.send("GET", "/admin/v1/callers", as: role).status
                return (status, ContinuousClock.now - started)
            }
            #expect(try await timed(nil).0 == 401)  // no wait yet
            #expect(try await timed(nil).1 >= .milliseconds(200))
            #expect(try await timed(nil).1 >= .milliseconds(400))
            let fourth = try await timed(nil)
            #expect(fourth.1 >= .milliseconds(800))
            // The real operator is slowed, not locked out, and the wait ends with its success.
            let operatorCall = try await timed(.operator)
            #expect(operatorCall.0 == 200)
            // Read from the back-off itself rather than timed: an upper bound on a time fails on a busy machine.
            #expect(backoff.delay(for: "127.0.0.1") == .zero)
        }
    }

    @Test("the back-off doubles per failure up to its ceiling, forgets after a quiet period, and stays bounded in memory")
    func backoffArithmetic() {
        let backoff = AdminBackoff(base: .milliseconds(100), ceiling: .seconds(1), forgetAfter: .seconds(60), capacity: 2)
        let start = ContinuousClock.now
        #expect(backoff.delay(for: "a", now: start) == .zero)
        for _ in 0..<3 { backoff.failed("a", now: start) }
        #expect(backoff.delay(for: "a", now: start) == .milliseconds(400))
        for _ in 0..<10 { backoff.failed("a", now: start) }
        #expect(backoff.delay(for: "a", now: start) == .seconds(1))
        #expect(backoff.delay(for: "a", now: start + .seconds(61)) == .zero)
        backoff.failed("b", now: start)
        backoff.failed("c", now: start + .seconds(1))
        backoff.failed("d", now: start + .seconds(2))
        #expect(backoff.delay(for: "b", now: start + .seconds(2)) == .zero)  // the stalest went first
        #expect(backoff.delay(for: "d", now: start + .seconds(2)) == .milliseconds(100))
        backoff.succeeded("d")
        #expect(backoff.delay(for: "d", now: start + .seconds(2)) == .zero)
    }

    @Test("the served binary answers the admin API and the console on its admin listener and records the change in its trail")
    func servedBinary() async throws {
        try await withGateway { gw in
            let token = try await gw.admin.addAdmin(name: "ops", role: .operator).token.exposedValue
            let served = try await ServedGateway.start(gw)
            let client = TestHTTPClient(port: served.adminPort, tls: nil)
            let read = try await client.send("GET", "/admin/v1/merchants/m3", headers: [("Authorization", "Bearer \(token)")])
            #expect(read.status == 200)
            let changed = try await client.send(
                "POST", "/admin/v1/merchants/m3/suspend", headers: [("Authorization", "Bearer \(token)"), ("If-Match", try #require(read.header("ETag")))])
            #expect(changed.status == 200)
            #expect(try await gw.admin.showMerchant(id: "m3").status == .suspended)
            #expect(try await client.send("GET", "/admin/v1/merchants", headers: [gw.bearer("checkout")]).status == 401)
            // The console is served beside the API, with its Content-Security-Policy.
            let console = try await client.send("GET", "/console/")
            #expect(console.status == 200)
            #expect(console.header("Content-Security-Policy")?.contains("default-src 'self'") == true)
            try await client.close()
            #expect(try await served.stop() == 0)
            let phases = try AuditTrailTests.records(served.auditPath, requestID: try #require(changed.header("Klarna-Gateway-Request-Id"))).map(\.0)
            #expect(phases == ["intent", "outcome"])
            // An admin's actions are found as docs/admin-api.md says.
            let export = try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"), ["audit", "export", "--audit-db", served.auditPath, "--caller", "admin:ops", "--format", "jsonl"],
                directory: gw.directory)
            #expect(export.status == 0, "\(export.stderr)")
            let lines = export.stdout.split(separator: "\n")
            #expect(lines.count == 2 && lines.allSatisfy { $0.contains("\"operation_id\":\"admin.suspendMerchant\"") }, "\(export.stdout)")
            // And one request's records by its id, or every refusal with one code, as the admin API finds them.
            let byRequest = try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"),
                ["audit", "export", "--audit-db", served.auditPath, "--request-id", try #require(changed.header("Klarna-Gateway-Request-Id"))],
                directory: gw.directory)
            #expect(byRequest.stdout.split(separator: "\n").count == 2, "\(byRequest.stdout)\(byRequest.stderr)")
            let byCode = try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"), ["audit", "export", "--audit-db", served.auditPath, "--error-code", "GATEWAY_UNAUTHENTICATED"],
                directory: gw.directory)
            #expect(byCode.stdout.split(separator: "\n").count == 1 && byCode.stdout.contains("\"status\":401"), "\(byCode.stdout)\(byCode.stderr)")
        }
    }

    @Test("every answer of every endpoint, refusals included, matches the OpenAPI document: status, headers, body schema")
    func answersMatchTheDocument() async throws {
        // With limits, so that the rate-limit answers have rows to check.
        try await withAdminAPI(rateLimits: AdminAPIRateLimitTests.limits) { api in
            var answers: [(String, String, TestHTTPResponse)] = []
            func call(_ method: String, _ path: String, as role: AdminRole?, headers: [(String, String)] = [], body: String? = nil) async throws -> TestHTTPResponse {
                let response = try await api.send(method, path, as: role, headers: headers, body: body)
                answers.append((method, path, response))
                return response
            }
            _ = try await call("GET", "/admin/v1/openapi.json", as: nil)
            _ = try await call("GET", "/admin/v1/account", as: .operator)
            _ = try await call("GET", "/admin/v1/merchants?limit=2&q=m", as: .viewer)
            _ = try await call("GET", "/admin/v1/merchants?limit=x", as: .viewer)
            _ = try await call("GET", "/admin/v1/merchants", as: nil)
            let m2 = try await call("GET", "/admin/v1/merchants/m2", as: .viewer)
            _ = try await call("GET", "/admin/v1/merchants/none", as: .viewer)
            let etag = try #require(m2.header("ETag"))
            _ = try await call("POST", "/admin/v1/merchants/m2/suspend", as: .viewer, headers: [("If-Match", etag)])
            _ = try await call("POST", "/admin/v1/merchants/m2/suspend", as: .operator)
            let suspended = try await call("POST", "/admin/v1/merchants/m2/suspend", as: .operator, headers: [("If-Match", etag)])
            _ = try await call("POST", "/admin/v1/merchants/m2/resume", as: .operator, headers: [("If-Match", etag)])
            let resumed = try await call("POST", "/admin/v1/merchants/m2/resume", as: .operator, headers: [("If-Match", try #require(suspended.header("ETag")))])
            _ = try await call("PUT", "/admin/v1/merchants/m2/release", as: .operator, headers: [("If-Match", try #require(resumed.header("ETag")))], body: "[]")
            _ = try await call("PUT", "/admin/v1/merchants/m2/release", as: .operator, headers: [("If-Match", try #require(resumed.header("ETag")))], body: #"{"release":"r5"}"#)
            _ = try await call("GET", "/admin/v1/callers", as: .viewer)
            _ = try await call("POST", "/admin/v1/callers/orders/revoke", as: .operator)
            _ = try await call("POST", "/admin/v1/callers/ghost/revoke", as: .operator)
            _ = try await call("POST", "/admin/v1/callers", as: .operator, body: #"{"id":"doc-caller"}"#)
            _ = try await call("POST", "/admin/v1/callers", as: .operator, body: #"{"id":"doc-caller"}"#)
            _ = try await call("POST", "/admin/v1/callers", as: .operator, body: #"{"id":"."}"#)
            _ = try await call("POST", "/admin/v1/callers/doc-caller/rotate-token", as: .operator)
            _ = try await call("POST", "/admin/v1/callers/ghost/rotate-token", as: .operator)
            let added = try await call("POST", "/admin/v1/merchants", as: .operator, body: #"{"id":"doc-m","partner_id":"acq","account":"krn:partner:global:account:test:DOC1"}"#)
            _ = try await call("POST", "/admin/v1/merchants", as: .operator, body: #"{"id":"doc-m","partner_id":"acq","account":"krn:partner:global:account:test:DOC1"}"#)
            _ = try await call("POST", "/admin/v1/merchants", as: .operator, body: #"{"id":"doc-x","partner_id":"acq","account":"krn:partner:global:account:live:DOC2"}"#)
            let patched = try await call(
                "PATCH", "/admin/v1/merchants/doc-m", as: .operator, headers: [("If-Match", try #require(added.header("ETag")))], body: #"{"groups":["g"]}"#)
            _ = try await call("PATCH", "/admin/v1/merchants/doc-m", as: .operator, body: #"{"groups":["g"]}"#)
            _ = try await call("DELETE", "/admin/v1/merchants/doc-m", as: .operator, headers: [("If-Match", try #require(added.header("ETag")))])
            _ = try await call("DELETE", "/admin/v1/merchants/doc-m", as: .operator, headers: [("If-Match", try #require(patched.header("ETag")))])
            _ = try await call("POST", "/admin/v1/merchants/import", as: .operator, headers: [("Content-Type", "text/csv")], body: "id,partner,account\nimp1,acq,krn:partner:global:account:test:IMP1\n")
            _ = try await call("POST", "/admin/v1/merchants/import", as: .operator, headers: [("Content-Type", "text/csv")], body: "nonsense")
            let rollouts = try await call("GET", "/admin/v1/releases/rollouts", as: .viewer)
            let rolled = try await call(
                "POST", "/admin/v1/releases/rollouts", as: .operator, headers: [("If-Match", try #require(rollouts.header("ETag")))],
                body: #"{"release":"r8","percent":12.5,"group":null}"#)
            _ = try await call("POST", "/admin/v1/releases/rollouts", as: .operator, body: #"{"release":"r8","percent":12.5}"#)
            _ = try await call("DELETE", "/admin/v1/releases/rollouts/r8", as: .operator, headers: [("If-Match", try #require(rollouts.header("ETag")))])
            _ = try await call("DELETE", "/admin/v1/releases/rollouts/r8", as: .operator, headers: [("If-Match", try #require(rolled.header("ETag")))])
            _ = try await call("GET", "/admin/v1/releases/history?limit=2", as: .viewer)
            _ = try await call("PUT", "/admin/v1/partners/acq/credentials", as: .security, body: #"{"api_key":"klarna_test_api_X"}"#)
            _ = try await call("PUT", "/admin/v1/partners/acq/credentials", as: .operator, headers: [("If-Match", AdminAPITests.staleETag)], body: #"{"api_key":"klarna_test_api_X"}"#)
            _ = try await call("PUT", "/admin/v1/partners/acq/credentials", as: .security, headers: [("If-Match", AdminAPITests.staleETag)], body: #"{"api_key":"klarna_test_api_X"}"#)
            let listed = try await call("GET", "/admin/v1/partners", as: .viewer)
            let liveTag = try #require(listed.json["partners"]?.arrayValue?.first { $0["id"]?.stringValue == "acq_live" }?["etag"]?.stringValue)
            _ = try await call("PATCH", "/admin/v1/partners/acq_live", as: .security, headers: [("If-Match", liveTag)], body: #"{"default_release":null}"#)
            _ = try await call("PATCH", "/admin/v1/partners/acq_live", as: .security, headers: [("If-Match", liveTag)], body: #"{"base_url":"http://localhost"}"#)
            _ = try await call("PATCH", "/admin/v1/partners/acq_live", as: .security, body: #"{"auth_form":"raw"}"#)
            _ = try await call("DELETE", "/admin/v1/partners/acq_live", as: .security, headers: [("If-Match", liveTag)])
            _ = try await call("DELETE", "/admin/v1/partners/ghost", as: .security, headers: [("If-Match", AdminAPITests.staleETag)])
            _ = try await call("GET", "/admin/v1/admins", as: .security)
            _ = try await call("POST", "/admin/v1/admins", as: .security, body: #"{"name":"doc-admin","role":"viewer"}"#)
            _ = try await call("POST", "/admin/v1/admins", as: .security, body: #"{"name":"doc-admin","role":"viewer"}"#)
            _ = try await call("DELETE", "/admin/v1/admins/doc-admin", as: .security)
            _ = try await call("DELETE", "/admin/v1/admins/doc-admin", as: .security)
            _ = try await call("GET", "/admin/v1/partners", as: .security)
            _ = try await call("GET", "/admin/v1/partners", as: nil)
            _ = try await call("PUT", "/admin/v1/merchants/m2/release", as: .operator, body: String(repeating: " ", count: 70_000))
            let client = api.gw.client()
            _ = try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
            try await client.close()
            await api.gw.audit.flush()
            _ = try await call("GET", "/admin/v1/audit/records?limit=500", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/records?merchant=m2&from=2020-01-01&limit=1", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/records?to=never", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/records", as: nil)
            _ = try await call("GET", "/admin/v1/audit/status", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/traffic?minutes=60", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/traffic?minutes=0", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/verification", as: .operator)
            _ = try await call("GET", "/admin/v1/audit/verification", as: .viewer)
            _ = try await call("GET", "/admin/v1/upstreams", as: .viewer)
            _ = try await call("GET", "/admin/v1/releases", as: .viewer)
            _ = try await call("GET", "/admin/v1/releases/rollout-preview?environment=test&release=r8&percent=50", as: .viewer)
            _ = try await call("GET", "/admin/v1/releases/rollout-preview?environment=test&release=r8&group=eu&limit=1", as: .viewer)
            _ = try await call("GET", "/admin/v1/releases/rollout-preview?environment=prod&release=r8", as: .viewer)
            _ = try await call("GET", "/admin/v1/rate-limits/merchants/m1", as: .viewer)
            _ = try await call("GET", "/admin/v1/rate-limits/merchants/none", as: .viewer)
            _ = try await call("GET", "/admin/v1/rate-limits/callers/checkout", as: .viewer)
            _ = try await call("GET", "/admin/v1/rate-limits/callers/checkout", as: nil)
            _ = try await call("GET", "/admin/v1/rate-limits/throttled?limit=1", as: .viewer)
            _ = try await call("GET", "/admin/v1/rate-limits/throttled?rule=none", as: .viewer)
            let tail = try await call("GET", "/admin/v1/audit/tail?limit=3", as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/tail?after=" + (tail.json["next_cursor"]?.stringValue ?? "-"), as: .viewer)
            _ = try await call("GET", "/admin/v1/audit/tail?after=nope", as: .viewer)
            let accessPolicy = try await call("GET", "/admin/v1/policies/access", as: .viewer)
            let rateLimits = try await call("GET", "/admin/v1/policies/rate-limits", as: .viewer)
            _ = try await call("POST", "/admin/v1/policies/access/validate", as: .operator, body: AdminAPIPolicyTests.proposal(GatewayHarness.defaultAccess))
            _ = try await call("POST", "/admin/v1/policies/rate-limits/validate", as: .operator, body: AdminAPIPolicyTests.proposal("global: {rate: -1}"))
            _ = try await call("POST", "/admin/v1/policies/rate-limits/validate", as: .viewer, body: AdminAPIPolicyTests.proposal("global: {rate: 1}"))
            // Applying: a stored version (answered as a read, with warnings), its history, a rollback to it, and refusals.
            let limitsTag = try #require(rateLimits.header("ETag"))
            let wider = AdminAPIPolicyApplyTests.proposal(AdminAPIRateLimitTests.limits + "\nglobal: {rate: 1000}\n", comment: "doc")
            let stored = try await call("PUT", "/admin/v1/policies/rate-limits", as: .operator, headers: [("If-Match", limitsTag)], body: wider)
            _ = try await call("PUT", "/admin/v1/policies/rate-limits", as: .operator, headers: [("If-Match", limitsTag)], body: wider)
            _ = try await call("PUT", "/admin/v1/policies/rate-limits", as: .operator, body: wider)
            _ = try await call("PUT", "/admin/v1/policies/access", as: .operator, headers: [("If-Match", try #require(accessPolicy.header("ETag")))], body: wider)
            _ = try await call("PUT", "/admin/v1/policies/rate-limits", as: .operator, headers: [("If-Match", try #require(stored.header("ETag")))], body: AdminAPIPolicyTests.proposal("global: {rate: -1}"))
            _ = try await call("GET", "/admin/v1/policies/rate-limits", as: .viewer)
            _ = try await call("GET", "/admin/v1/policies/rate-limits/history?limit=5", as: .viewer)
            _ = try await call("GET", "/admin/v1/policies/access/history", as: .viewer)
            _ = try await call("GET", "/admin/v1/policies/access/history?before=x", as: .viewer)
            let back = JSONValue.object([("version", .string(try #require(stored.header("ETag"))))]).text
            _ = try await call("POST", "/admin/v1/policies/rate-limits/rollback", as: .operator, headers: [("If-Match", try #require(stored.header("ETag")))], body: back)
            _ = try await call("POST", "/admin/v1/policies/access/rollback", as: .security, headers: [("If-Match", try #require(accessPolicy.header("ETag")))], body: back)
            let limitsNow = try await call("GET", "/admin/v1/policies/rate-limits", as: .viewer)
            _ = try await call("DELETE", "/admin/v1/policies/rate-limits", as: .operator, headers: [("If-Match", try #require(limitsNow.header("ETag")))])
            _ = try await call("DELETE", "/admin/v1/policies/access", as: .security, headers: [("If-Match", try #require(accessPolicy.header("ETag")))])
            _ = try await call("GET", "/admin/v1/policies/rate-limits/history", as: .viewer)
            // A destination and events with a pending and a dead delivery, so that the webhook answers have rows to check.
            let webhooks = try api.gw.admin.webhookStore
            try await api.gw.admin.addWebhookDestination(
                name: "doc-hooks", url: "https://hooks.example/doc", secret: Secret(AdminAPIWebhookTests.random("doc")), clientCertificatePEM: nil, clientKeyPEM: nil)
            let m1 = try await api.gw.admin.showMerchant(id: "m1").account.rawValue
            _ = try await webhooks.saveWebhookEvents(["doc-ev1", "doc-ev2"].map { id in
                NewWebhookEvent(
                    event: WebhookEventRecord(
                        eventID: id, partnerID: "acq", signingKeyID: "k1", eventType: "payment.transaction.captured", account: m1, merchantID: "m1",
                        receivedAtMicros: UTCTime.nowMicros(), state: .pending, body: []), destinations: ["doc-hooks"])
            })
            try await webhooks.completeWebhookDeliveries([
                WebhookDeliveryOutcome(
                    eventID: "doc-ev2", destination: "doc-hooks", nodeID: "n", attempt: 3, state: .dead, nextAttemptMicros: 0, status: 500, error: "HTTP 500",
                    timeMicros: UTCTime.nowMicros())
            ])
            _ = try await call("GET", "/admin/v1/webhooks/destinations", as: .viewer)
            _ = try await call("GET", "/admin/v1/webhooks/events?limit=5&merchant=m1", as: .viewer)
            _ = try await call("GET", "/admin/v1/webhooks/events?state=pending", as: .viewer)
            _ = try await call("GET", "/admin/v1/webhooks/events?state=lost", as: .viewer)
            try await api.gw.admin.addWebhookKey(partnerID: "acq", keyID: "doc-key", secret: Secret(AdminAPIWebhookTests.random("doc")))
            _ = try await call("GET", "/admin/v1/webhooks/keys?partner=acq", as: .viewer)
            _ = try await call("GET", "/admin/v1/webhooks/keys?partner=", as: .viewer)
            // Webhook changes: each answer and refusal of the destinations, keys and events written to.
            let destination = #"{"name":"doc-new","url":"https://hooks.example/new","secret":"\#(AdminAPIWebhookTests.random("doc"))"}"#
            let newDestination = try await call("POST", "/admin/v1/webhooks/destinations", as: .security, body: destination)
            _ = try await call("POST", "/admin/v1/webhooks/destinations", as: .security, body: destination)
            _ = try await call("POST", "/admin/v1/webhooks/destinations", as: .security, body: #"{"name":"doc-x","url":"ftp://x"}"#)
            _ = try await call("PUT", "/admin/v1/webhooks/destinations/doc-new", as: .security, body: #"{"url":"https://hooks.example/v2"}"#)
            _ = try await call("PUT", "/admin/v1/webhooks/destinations/doc-new", as: .security, headers: [("If-Match", AdminAPITests.staleETag)], body: #"{"url":"https://hooks.example/v2"}"#)
            let replacedDestination = try await call(
                "PUT", "/admin/v1/webhooks/destinations/doc-new", as: .security, headers: [("If-Match", try #require(newDestination.header("ETag")))],
                body: #"{"url":"https://hooks.example/v2"}"#)
            _ = try await call("DELETE", "/admin/v1/webhooks/destinations/doc-new", as: .security, headers: [("If-Match", try #require(replacedDestination.header("ETag")))])
            _ = try await call("DELETE", "/admin/v1/webhooks/destinations/doc-new", as: .security, headers: [("If-Match", AdminAPITests.staleETag)])
            let key = #"{"partner_id":"acq","key_id":"doc-key-2","secret":"\#(AdminAPIWebhookTests.random("doc"))"}"#
            _ = try await call("POST", "/admin/v1/webhooks/keys", as: .security, body: key)
            _ = try await call("POST", "/admin/v1/webhooks/keys", as: .security, body: key)
            _ = try await call("POST", "/admin/v1/webhooks/keys", as: .operator, body: key)
            _ = try await call("POST", "/admin/v1/webhooks/keys/rotate", as: .security, body: #"{"partner_id":"acq"}"#)
            _ = try await call("POST", "/admin/v1/webhooks/keys/rotate", as: .security, body: #"{"partner_id":"ghost"}"#)
            _ = try await call("DELETE", "/admin/v1/webhooks/keys/acq/doc-key-2", as: .security)
            _ = try await call("DELETE", "/admin/v1/webhooks/keys/acq/doc-key-2", as: .security)
            _ = try await call("GET", "/admin/v1/webhooks/events/doc-ev2", as: .viewer)
            _ = try await call("GET", "/admin/v1/webhooks/events/ghost", as: .viewer)
            _ = try await call("POST", "/admin/v1/webhooks/events/doc-ev2/replay", as: .operator, body: #"{"destination":"doc-hooks"}"#)
            _ = try await call("POST", "/admin/v1/webhooks/events/doc-ev2/replay", as: .operator)
            _ = try await call("POST", "/admin/v1/webhooks/events/ghost/replay", as: .operator)
            _ = try await call("POST", "/admin/v1/webhooks/events/doc-ev2/replay", as: .operator, body: "[]")
            #expect(Set(answers.map(\.2.status)) == [200, 201, 400, 401, 403, 404, 409, 412, 413, 422, 428])

            let document = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let input = JSONValue.object([
                ("document", .string(document.appendingPathComponent("Sources/GatewayApp/Resources/admin-openapi.json").path)),
                ("answers", .array(answers.map { method, path, response in
                    .object([
                        ("method", .string(method)), ("path", .string(path)), ("status", .int(response.status)),
                        ("headers", .object(response.headers.map { ($0.0, JSONValue.string($0.1)) })), ("body", .string(response.text)),
                    ])
                })),
            ])
            // Run from a scratch directory: the child's captured output is written where it runs.
            let checked = try await ChildProcess.run(
                "/usr/bin/env", ["python3", document.appendingPathComponent("bin/openapi-check").path], directory: FileManager.default.temporaryDirectory,
                stdin: input.text, timeout: .seconds(60))
            #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
            #expect(checked.stdout.contains("\(answers.count) answers checked, 0 problems"))
        }
    }

    /// schemathesis, as `bin/test` installs it (a virtual environment under `.build/`); nil when not given.
    static var schemathesis: String? { ProcessInfo.processInfo.environment["KGW_SCHEMATHESIS"] }
    /// Whether a missing schemathesis fails the test instead of skipping it (`bin/test` sets it).
    static var schemathesisRequired: Bool { ProcessInfo.processInfo.environment["KGW_REQUIRE_SCHEMATHESIS"] == "1" }

    @Test(
        "schemathesis finds no server error and no answer off the document, with and without a valid token",
        .enabled(if: schemathesis != nil || schemathesisRequired, "needs schemathesis (KGW_SCHEMATHESIS): bin/test installs it"))
    func propertyBasedCheck() async throws {
        let binary = try #require(Self.schemathesis, "KGW_REQUIRE_SCHEMATHESIS is set but KGW_SCHEMATHESIS is not; bin/test installs it")
        try await withAdminAPI { api in
            let base = "http://127.0.0.1:\(api.server.port)"
            let directory = FileManager.default.temporaryDirectory
            let settings = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("bin/schemathesis.toml").path
            let run = try await ChildProcess.run(
                binary,
                [
                    "--config-file", settings, "run", base + "/admin/v1/openapi.json", "--url", base, "--header", "Authorization: Bearer \(api.tokens[.security] ?? "")",
                    "--checks", "all", "--max-examples", "20", "--workers", "1", "--seed", "18", "--no-color",
                    // No example database between runs either (bin/schemathesis.toml turns the crash cache off).
                    "--generation-database", "none",
                ],
                environment: [
                    "HOME": directory.path, "SCHEMATHESIS_HOOKS": "",
                    "HYPOTHESIS_STORAGE_DIRECTORY": directory.appendingPathComponent("kgw-hypothesis").path,
                ], directory: directory, timeout: .seconds(900))
            #expect(run.stdout.contains("Tested: \(AdminRoute.all.count)"), "schemathesis did not test every operation:\n\(run.stdout.suffix(4000))")
            #expect(run.status == 0, "schemathesis failed:\n\(run.stdout.suffix(12_000))\n\(run.stderr.suffix(2000))")
            // Nothing it sent made the gateway leak a secret either.
            for secret in api.gw.plantedSecrets { #expect(!run.stdout.contains(secret)) }
        }
    }

    @Test("the OpenAPI document served is the committed one, and names exactly the routes served")
    func openAPI() async throws {
        try await withAdminAPI { api in
            let served = try await api.send("GET", "/admin/v1/openapi.json", as: nil)
            #expect(served.status == 200)
            #expect(served.text == (try GatewayHarness.repositoryFile("Sources/GatewayApp/Resources/admin-openapi.json")))
            let document = served.json
            #expect(document["openapi"]?.stringValue == "3.1.0")
            var operations: Set<String> = []
            for (path, item) in document["paths"]?.objectValue ?? [] {
                for (method, operation) in item.objectValue ?? [] {
                    let id = operation["operationId"]?.stringValue ?? "?"
                    if id != "admin.openAPI" { operations.insert("\(method.uppercased()) \(path) \(id)") }
                }
            }
            let routes = Set(AdminRoute.all.map { "\($0.method) \($0.template) \($0.operationID)" })
            #expect(operations == routes)
        }
    }
}

