import Foundation
import GatewayCore
import GatewayTestSupport
import NIOCore
import Testing

/// Issue 18's rate-limit state: a merchant's and a caller's room, read from the running gateway's limiter after
/// real calls through it, on a real admin listener over a real store.
@Suite("Admin API: rate-limit state")
struct AdminAPIRateLimitTests {
    /// One call per 100 s keeps the room after a few calls exact for the test's duration.
    static let limits = """
        merchant:
          test:
            default: {rate: 0.01, burst: 3}
        caller: {rate: 0.01, burst: 5}
        """

    /// The `rules` of an answer, by category (`-` for none).
    static func rules(_ answer: TestHTTPResponse) -> [String: JSONValue] {
        Dictionary((answer.json["rules"]?.arrayValue ?? []).map { ($0["category"]?.stringValue ?? "-", $0) }, uniquingKeysWith: { first, _ in first })
    }

    @Test("a merchant's room per category and a caller's room follow the calls made; a hold learned from Klarna shows")
    func room() async throws {
        try await withAdminAPI(rateLimits: Self.limits) { api in
            let client = api.gw.client()
            for _ in 0..<2 {
                #expect(try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).status == 200)
            }
            try await client.close()
            let category = try #require(api.gw.service.runtime.snapshots.current.catalogue.operations.first { $0.id == "readPaymentTransaction" }?.category)

            let merchant = try await api.send("GET", "/admin/v1/rate-limits/merchants/m1", as: .viewer)
            #expect(merchant.status == 200)
            #expect(merchant.json["merchant_id"]?.stringValue == "m1")
            #expect(merchant.json["environment"]?.stringValue == "test")
            #expect(merchant.json["clustered"]?.boolValue == false)
            let rules = Self.rules(merchant)
            // Every category has the environment's default limit; only the one called has less than its burst.
            #expect(rules.count == Set(api.gw.service.runtime.snapshots.current.catalogue.operations.map(\.category)).count)
            #expect(rules[category]?["remaining"]?.intValue == 1)
            #expect(rules[category]?["burst"]?.intValue == 3)
            #expect(rules[category]?["rule"]?.stringValue == "merchant")
            #expect((rules[category]?["reset_after_ms"]?.intValue ?? 0) > 100_000)
            #expect(rules.filter { $0.key != category }.values.allSatisfy { $0["remaining"]?.intValue == 3 && $0["reset_after_ms"]?.intValue == 0 })
            #expect(rules.values.allSatisfy { $0["held_for_ms"]?.intValue == 0 })
            // A merchant not called has its full burst everywhere.
            let untouched = Self.rules(try await api.send("GET", "/admin/v1/rate-limits/merchants/m3", as: .viewer))
            #expect(!untouched.isEmpty && untouched.values.allSatisfy { $0["remaining"]?.intValue == 3 })

            // Klarna's 429 holds the merchant's key: the relay calls `hold` with the subject of the call; so does this.
            let limiter = api.gw.service.runtime.rateLimiter
            let subject = RateLimitSubject(callerID: "checkout", merchantID: "m1", merchantGroups: [], partnerID: "acq", environment: .test, category: category)
            let holding = NIODeadline.now()
            limiter.hold(subject, until: Int64(holding.uptimeNanoseconds) + 60_000_000_000)
            let held = Self.rules(try await api.send("GET", "/admin/v1/rate-limits/merchants/m1", as: .operator))
            // The minute's hold, less no more than the read took however slow the machine (1 ms for rounding).
            let elapsedMs = Int((NIODeadline.now() - holding).nanoseconds / 1_000_000)
            let heldFor = held[category]?["held_for_ms"]?.intValue ?? 0
            #expect(heldFor <= 60_000 && heldFor >= 60_000 - elapsedMs - 1, "held for \(heldFor) ms, \(elapsedMs) ms after the hold")
            #expect(held.filter { $0.key != category }.values.allSatisfy { $0["held_for_ms"]?.intValue == 0 })

            let caller = try await api.send("GET", "/admin/v1/rate-limits/callers/checkout", as: .security)
            #expect(caller.status == 200)
            #expect(caller.json["caller_id"]?.stringValue == "checkout")
            let callerRules = caller.json["rules"]?.arrayValue ?? []
            #expect(callerRules.count == 1)
            #expect(callerRules.first?["rule"]?.stringValue == "caller")
            #expect(callerRules.first?["category"] == .null)
            #expect(callerRules.first?["remaining"]?.intValue == 3)
            #expect(callerRules.first?["burst"]?.intValue == 5)
            let idle = try await api.send("GET", "/admin/v1/rate-limits/callers/orders", as: .viewer)
            #expect(idle.json["rules"]?.arrayValue?.first?["remaining"]?.intValue == 5)
        }
    }

    /// Every rule with a limit, one call per 100 s: partner, caller × merchant and global beside the merchant's.
    static let everyRule = """
        merchant:
          test:
            default: {rate: 0.01, burst: 3}
        partner:
          test:
            default: {rate: 0.01, burst: 7}
        caller_merchant: {rate: 0.01, burst: 4}
        global: {rate: 0.01, burst: 9}
        """

    @Test("a partner's room per category, a caller's room for one merchant and the global room follow the calls made; unknown ids are 404")
    func partnerCallerMerchantAndGlobalRoom() async throws {
        try await withAdminAPI(rateLimits: Self.everyRule) { api in
            let client = api.gw.client()
            for _ in 0..<2 {
                #expect(try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).status == 200)
            }
            try await client.close()
            let snapshot = api.gw.service.runtime.snapshots.current
            let category = try #require(snapshot.catalogue.operations.first { $0.id == "readPaymentTransaction" }?.category)

            let partner = try await api.send("GET", "/admin/v1/rate-limits/partners/acq", as: .viewer)
            #expect(partner.status == 200, "\(partner.text)")
            #expect(partner.json["partner_id"]?.stringValue == "acq" && partner.json["environment"]?.stringValue == "test")
            let partnerRules = Self.rules(partner)
            #expect(partnerRules.count == Set(snapshot.catalogue.operations.map(\.category)).count)
            #expect(partnerRules[category]?["rule"]?.stringValue == "partner")
            #expect(partnerRules[category]?["remaining"]?.intValue == 5 && partnerRules[category]?["burst"]?.intValue == 7)
            #expect(partnerRules.filter { $0.key != category }.values.allSatisfy { $0["remaining"]?.intValue == 7 })

            let pair = try await api.send("GET", "/admin/v1/rate-limits/callers/checkout/merchants/m1", as: .viewer)
            #expect(pair.status == 200, "\(pair.text)")
            #expect(pair.json["caller_id"]?.stringValue == "checkout" && pair.json["merchant_id"]?.stringValue == "m1")
            let pairRules = pair.json["rules"]?.arrayValue ?? []
            #expect(pairRules.count == 1 && pairRules.first?["rule"]?.stringValue == "caller_merchant")
            #expect(pairRules.first?["remaining"]?.intValue == 2 && pairRules.first?["burst"]?.intValue == 4)
            // Another merchant of the same caller, and another caller of the same merchant: untouched keys.
            let otherMerchant = try await api.send("GET", "/admin/v1/rate-limits/callers/checkout/merchants/m3", as: .viewer)
            #expect(otherMerchant.json["rules"]?.arrayValue?.first?["remaining"]?.intValue == 4)
            let otherCaller = try await api.send("GET", "/admin/v1/rate-limits/callers/orders/merchants/m1", as: .viewer)
            #expect(otherCaller.json["rules"]?.arrayValue?.first?["remaining"]?.intValue == 4)

            let global = try await api.send("GET", "/admin/v1/rate-limits/global", as: .viewer)
            #expect(global.status == 200, "\(global.text)")
            let globalRules = global.json["rules"]?.arrayValue ?? []
            #expect(globalRules.count == 1 && globalRules.first?["rule"]?.stringValue == "global")
            #expect(globalRules.first?["remaining"]?.intValue == 7 && globalRules.first?["burst"]?.intValue == 9)

            for path in [
                "/admin/v1/rate-limits/partners/nope", "/admin/v1/rate-limits/callers/nobody/merchants/m1",
                "/admin/v1/rate-limits/callers/checkout/merchants/nope",
            ] {
                let missing = try await api.send("GET", path, as: .viewer)
                #expect(missing.status == 404 && missing.errorCode == "GATEWAY_NOT_FOUND", "\(path): \(missing.text)")
            }
            #expect(try await api.send("GET", "/admin/v1/rate-limits/global", as: nil).status == 401)
        }
    }

    @Test("who is throttled now: the merchant and the caller refused and the merchant Klarna holds, with rule, room and wait; paged, filtered by rule; refusals in the gateway's error shape")
    func throttled() async throws {
        try await withAdminAPI(rateLimits: Self.limits) { api in
            let client = api.gw.client()
            // m1's burst of 3 is spent, its fourth call refused by the merchant rule; checkout has then spent 3 of its
            // 5 (a refused call spends nothing), so its third call to m2 is refused by the caller rule.
            var codes: [String?] = []
            for merchant in ["m1", "m1", "m1", "m1", "m2", "m2", "m2"] {
                codes.append(try await client.send("GET", "/v2/accounts/\(merchant)" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")]).errorCode)
            }
            try await client.close()
            #expect(codes.map { $0 == "GATEWAY_RATE_LIMITED" } == [false, false, false, true, false, false, true], "\(codes)")
            let category = try #require(api.gw.service.runtime.snapshots.current.catalogue.operations.first { $0.id == "readPaymentTransaction" }?.category)
            let limiter = api.gw.service.runtime.rateLimiter
            let subject = RateLimitSubject(callerID: "checkout", merchantID: "m3", merchantGroups: [], partnerID: "acq", environment: .test, category: category)
            limiter.hold(subject, until: Int64(NIODeadline.now().uptimeNanoseconds) + 60_000_000_000)
            // The sweep that runs on a timer keeps what the window still covers.
            api.gw.service.runtime.sweepRateLimits()

            let answer = try await api.send("GET", "/admin/v1/rate-limits/throttled", as: .viewer)
            #expect(answer.status == 200)
            #expect(answer.json["clustered"]?.boolValue == false && answer.json["complete"]?.boolValue == true)
            #expect(answer.json["window_seconds"]?.intValue == 300)
            #expect(answer.json["next_cursor"] == .null)
            let keys = answer.json["throttled"]?.arrayValue ?? []
            #expect(keys.map { $0["rule"]?.stringValue ?? "-" } == ["caller", "merchant", "merchant"])
            let caller = keys.first
            #expect(caller?["caller_id"]?.stringValue == "checkout" && caller?["merchant_id"] == .null && caller?["category"] == .null)
            #expect(caller?["burst"]?.intValue == 5 && caller?["remaining"]?.intValue == 0 && caller?["refused"]?.intValue == 1)
            #expect(caller?["throttled_now"]?.boolValue == true && (caller?["retry_after_ms"]?.intValue ?? 0) > 0)
            let m1 = keys.dropFirst().first
            #expect(m1?["merchant_id"]?.stringValue == "m1" && m1?["category"]?.stringValue == category && m1?["caller_id"] == .null)
            #expect(m1?["burst"]?.intValue == 3 && m1?["remaining"]?.intValue == 0 && m1?["refused"]?.intValue == 1 && m1?["delayed"]?.intValue == 0)
            #expect(m1?["throttled_now"]?.boolValue == true && (m1?["retry_after_ms"]?.intValue ?? 0) > 0 && m1?["held_for_ms"]?.intValue == 0)
            #expect(m1?["last_throttled_ms_ago"]?.intValue != nil)
            // Held by Klarna: no limit of the gateway's threw it back, so no figures and no refusals.
            let m3 = keys.last
            #expect(m3?["merchant_id"]?.stringValue == "m3" && m3?["rate"] == .null && m3?["refused"]?.intValue == 0)
            #expect((m3?["held_for_ms"]?.intValue ?? 0) > 0 && m3?["throttled_now"]?.boolValue == true && m3?["last_throttled_ms_ago"] == .null)
            // m2 spent no burst it lacked: it is not listed.
            #expect(!keys.contains { $0["merchant_id"]?.stringValue == "m2" })

            // Pages of 2, then the rest; one rule only.
            let first = try await api.send("GET", "/admin/v1/rate-limits/throttled?limit=2", as: .operator)
            #expect(first.json["throttled"]?.arrayValue?.count == 2)
            let cursor = try #require(first.json["next_cursor"]?.stringValue)
            let rest = try await api.send("GET", "/admin/v1/rate-limits/throttled?limit=2&after=" + cursor, as: .security)
            #expect(rest.json["throttled"]?.arrayValue?.map { $0["merchant_id"]?.stringValue } == ["m3"])
            #expect(rest.json["next_cursor"] == .null)
            let callers = try await api.send("GET", "/admin/v1/rate-limits/throttled?rule=caller", as: .viewer)
            #expect(callers.json["throttled"]?.arrayValue?.map { $0["caller_id"]?.stringValue } == ["checkout"])

            for query in ["rule=nobody", "limit=0", "after=" + String(repeating: "x", count: 201)] {
                let refused = try await api.send("GET", "/admin/v1/rate-limits/throttled?" + query, as: .viewer)
                #expect(refused.errorCode == "GATEWAY_BAD_REQUEST", "\(query)")
                #expect(refused.json["error_id"]?.stringValue == refused.header("Klarna-Gateway-Request-Id") && refused.json["error_id"] != nil)
            }
            #expect(try await api.send("GET", "/admin/v1/rate-limits/throttled", as: nil).errorCode == "GATEWAY_UNAUTHENTICATED")
            #expect(try await api.send("DELETE", "/admin/v1/rate-limits/throttled", as: .security).status == 405)
            try await api.expectNoSecret(in: try await api.readAsEveryRole(["/admin/v1/rate-limits/throttled"]))
        }
    }

    @Test("without rate-limits.yaml Klarna's figures; unknown ids are 404; no token is 401; nothing secret in any answer")
    func refusalsAndSecrets() async throws {
        try await withAdminAPI { api in
            let client = api.gw.client()
            _ = try await client.send("GET", "/v2/accounts/m1" + AuditTrailTests.transaction, headers: [api.gw.bearer("checkout")])
            try await client.close()
            let merchant = try await api.send("GET", "/admin/v1/rate-limits/merchants/m1", as: .viewer)
            #expect(merchant.status == 200)
            // Without rate-limits.yaml the merchant has Klarna's published test figures; the caller has no limit.
            let rules = Self.rules(merchant)
            #expect(rules["payment-request-management"]?["rate"]?.intValue == 5)
            #expect(rules.filter { $0.key != "payment-request-management" }.values.allSatisfy { $0["rate"]?.intValue == 50 })
            #expect(try await api.send("GET", "/admin/v1/rate-limits/callers/checkout", as: .viewer).json["rules"]?.arrayValue?.isEmpty == true)
            for path in ["/admin/v1/rate-limits/merchants/nope", "/admin/v1/rate-limits/callers/nobody"] {
                #expect(try await api.send("GET", path, as: .viewer).errorCode == "GATEWAY_NOT_FOUND", "\(path)")
            }
            #expect(try await api.send("GET", "/admin/v1/rate-limits/merchants", as: .viewer).status == 404)
            #expect(try await api.send("POST", "/admin/v1/rate-limits/merchants/m1", as: .operator).status == 405)
            #expect(try await api.send("GET", "/admin/v1/rate-limits/merchants/m1", as: nil).status == 401)
            #expect(try await api.send("GET", "/admin/v1/rate-limits/callers/checkout", as: nil, headers: [("Authorization", "Bearer kgwa_wrong")]).status == 401)

            let text = try await api.readAsEveryRole([
                "/admin/v1/rate-limits/merchants/m1", "/admin/v1/rate-limits/merchants/m2", "/admin/v1/rate-limits/callers/checkout",
                "/admin/v1/rate-limits/partners/acq", "/admin/v1/rate-limits/callers/checkout/merchants/m2", "/admin/v1/rate-limits/global",
            ])
            #expect(text.contains("payment-request-management"), "the search below would search empty answers")
            try await api.expectNoSecret(in: text)
        }
    }
}
