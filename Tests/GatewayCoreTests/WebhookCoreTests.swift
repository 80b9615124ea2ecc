import GatewayCore
import Testing

/// The webhook path's pure decisions: Klarna's signature, the envelope, the order of the receiving checks, routes,
/// the Standard Webhooks signature, the delivery schedule and the per-destination gate.
@Suite("Webhooks (pure)")
struct WebhookCoreTests {
    static let secret = Secret("klarna-signing-secret-PLANTED")
    static let body = Array(#"{"metadata":{"event_id":"e-1","event_type":"payment.request.state-change.completed","subject_account_id":"krn:partner:global:account:test:M1"},"payload":{}}"#.utf8)

    @Test("Klarna's signature: the lowercase hex HMAC-SHA256 of the raw body verifies; any other body, key or text does not")
    func klarnaSignature() {
        let signature = KlarnaWebhookSignature.sign(body: Self.body, secret: Self.secret)
        #expect(signature.count == 64 && signature == signature.lowercased())
        #expect(KlarnaWebhookSignature.verify(body: Self.body, signature: signature, secret: Self.secret))
        #expect(KlarnaWebhookSignature.verify(body: Self.body, signature: signature.uppercased(), secret: Self.secret))
        var altered = Self.body
        altered[altered.count - 3] = UInt8(ascii: "1")
        #expect(!KlarnaWebhookSignature.verify(body: altered, signature: signature, secret: Self.secret))
        #expect(!KlarnaWebhookSignature.verify(body: Self.body, signature: signature, secret: Secret("another key")))
        #expect(!KlarnaWebhookSignature.verify(body: Self.body, signature: String(signature.dropLast()), secret: Self.secret))
        #expect(!KlarnaWebhookSignature.verify(body: Self.body, signature: "", secret: Self.secret))
        #expect(!KlarnaWebhookSignature.verify(body: Self.body, signature: String(repeating: "z", count: 64), secret: Self.secret))
    }

    @Test("the receiving checks run in order: unknown key, missing signature, wrong signature, then JSON, then the envelope")
    func receiptOrder() {
        let keys = WebhookSigningKeys(["acq": ["key-1": Self.secret]])
        let good = KlarnaWebhookSignature.sign(body: Self.body, secret: Self.secret)
        func reason(partner: String = "acq", key: String? = "key-1", signature: String? = nil, body: [UInt8] = Self.body) -> WebhookRefusal? {
            switch WebhookReceipt.verify(partnerID: partner, keyID: key, signature: signature ?? KlarnaWebhookSignature.sign(body: body, secret: Self.secret), body: body, keys: keys) {
            case .success: nil
            case .failure(let refused): refused.reason
            }
        }
        #expect(reason() == nil)
        #expect(reason(partner: "other") == .unknownKey, "a key of another partner is unknown here")
        #expect(reason(key: nil) == .unknownKey)
        #expect(reason(key: "key-2") == .unknownKey)
        #expect(reason(signature: "") == .missingSignature)
        #expect(reason(signature: String(good.reversed())) == .badSignature)
        // A body that is not JSON is refused as such only once it is authenticated.
        #expect(reason(signature: good, body: Array("not json".utf8)) == .badSignature)
        #expect(reason(body: Array("not json".utf8)) == .notJSON)
        #expect(reason(body: Array(#"{"metadata":{"event_id":"e","event_type":"t"}}"#.utf8)) == .notEnvelope)
        #expect(reason(body: Array(#"{"metadata":{"event_id":"","event_type":"t","subject_account_id":"k"}}"#.utf8)) == .notEnvelope)
        #expect(reason(body: Array(#"[1,2]"#.utf8)) == .notEnvelope)
        #expect(WebhookRefusal.badSignature.error().status == 401 && WebhookRefusal.unknownKey.error().message == WebhookRefusal.badSignature.error().message)
        #expect(WebhookRefusal.tooLarge.error().status == 413 && WebhookRefusal.notJSON.error().status == 400 && WebhookRefusal.notFound.error().status == 404)
    }

    @Test("only POST /klarna/webhooks/{partner_id} is served")
    func receiptPath() throws {
        #expect(try WebhookReceipt.partner(method: "POST", target: "/klarna/webhooks/acq").get() == "acq")
        for (method, target) in [("GET", "/klarna/webhooks/acq"), ("POST", "/klarna/webhooks/"), ("POST", "/klarna/webhooks/acq/x"),
                                 ("POST", "/klarna/webhooks/acq?x=1"), ("POST", "/v2/accounts/m1"), ("POST", "/klarna/webhooks/..")] {
            #expect((try? WebhookReceipt.partner(method: method, target: target).get()) == nil, "\(method) \(target)")
        }
    }

    @Test("the envelope reads metadata.event_id, event_type and subject_account_id; strict JSON")
    func envelope() throws {
        let envelope = try KlarnaWebhookEnvelope.parse(Self.body)
        #expect(envelope.eventID == "e-1" && envelope.eventType == "payment.request.state-change.completed")
        #expect(envelope.subjectAccountID == "krn:partner:global:account:test:M1")
        for text in ["{", "{\"a\":1,}", "[01]", "{\"a\":\"\\x\"}", "{\"a\":1} x", "\"\u{01}\"", "nul"] {
            #expect(throws: (any Error).self, "\(text)") { try JSONValue.parse(Array(text.utf8)) }
        }
        #expect(try JSONValue.parse(Array(#"{"a":[1,-2.5e3,true,false,null,"\u00e9\ud83d\ude00"]}"#.utf8))["a"] != nil)
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: (any Error).self) { try JSONValue.parse(Array(deep.utf8)) }
    }

    @Test("routes: type patterns and merchant selectors choose destinations in order, each once; problems name the line")
    func routes() {
        let table = WebhookRouteTable(routes: [
            WebhookRoute(events: ["payment.*"], merchants: ["*"], destinations: ["orders"], line: 2),
            WebhookRoute(events: ["payment.request.state-change.completed", "settlement.*"], merchants: ["group:eu", "m9"], destinations: ["ledger", "orders"], line: 5),
            WebhookRoute(events: ["*"], merchants: ["partner:other"], destinations: ["audit"], line: 8),
        ])
        let m1 = MerchantRecord(id: "m1", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M1")!)
        let m2 = MerchantRecord(id: "m2", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M2")!, groups: ["eu"])
        let m3 = MerchantRecord(id: "m3", partnerID: "other", account: AccountKRN("krn:partner:global:account:test:M3")!)
        #expect(table.destinations(eventType: "payment.request.state-change.completed", merchant: m1) == ["orders"])
        #expect(table.destinations(eventType: "payment.request.state-change.completed", merchant: m2) == ["orders", "ledger"])
        #expect(table.destinations(eventType: "settlement.payout.processed", merchant: m2) == ["ledger", "orders"])
        #expect(table.destinations(eventType: "settlement.payout.processed", merchant: m1) == [])
        #expect(table.destinations(eventType: "partner.account.state-change.operational", merchant: m3) == ["audit"])
        #expect(!WebhookRoute.matches(pattern: "payment.*", eventType: "paymentx.y"))
        let bad = WebhookRouteTable(routes: [WebhookRoute(events: ["pay*ment"], merchants: ["group:"], destinations: ["nowhere"], line: 7)])
        let problems = bad.problems(knownDestinations: ["orders"])
        #expect(problems.count == 3 && problems.allSatisfy { $0.hasPrefix("line 7:") }, "\(problems)")
    }

    @Test("Standard Webhooks: v1, base64 HMAC-SHA256 of id.timestamp.body; whsec_ secrets are their decoded bytes")
    func standardSignature() {
        // The scheme's published example (standard-webhooks.com): secret, id, timestamp, body and signature.
        let secret = Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signature = StandardWebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body, secret: secret)
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(StandardWebhookSignature.verify(header: "v1,bogus " + signature, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body, secret: secret))
        #expect(!StandardWebhookSignature.verify(header: signature, id: "msg_other", timestamp: 1614265330, body: body, secret: secret))
    }

    @Test("the default schedule keeps a delivery at least 24 hours; 2xx is delivered, the last failure dead")
    func schedule() {
        let span = WebhookDeliverySchedule.standard.span
        #expect(span.minimum >= 24 * 3600, "minimum \(span.minimum) s")
        var random = SeededGenerator(seed: 7)
        let schedule = WebhookDeliverySchedule(baseMs: 100, capMs: 1_000, maxAttempts: 3)
        #expect(schedule.after(attempt: 1, status: 204, nowMicros: 0, random: &random).state == .delivered)
        let retry = schedule.after(attempt: 1, status: 503, nowMicros: 0, random: &random)
        #expect(retry.state == .pending && (50_000...100_000).contains(retry.nextAttemptMicros))
        let second = schedule.after(attempt: 2, status: nil, nowMicros: 0, random: &random)
        #expect(second.state == .pending && (100_000...200_000).contains(second.nextAttemptMicros))
        #expect(schedule.after(attempt: 3, status: 500, nowMicros: 0, random: &random).state == .dead)
    }

    @Test("a destination's gate: at most its concurrency in flight; open after failures, one probe after the open period")
    func gate() {
        var gate = WebhookDestinationGate(concurrency: 2, breaker: .init(failureThreshold: 2, openDurationMs: 1))
        #expect(gate.wantsWork(now: 0) && gate.room(now: 0) == 2)
        #expect(gate.start(now: 0) == .allow && gate.start(now: 0) == .allow)
        #expect(!gate.wantsWork(now: 0))
        if case .reject = gate.start(now: 0) {} else { Issue.record("a third start must be refused") }
        gate.finish(delivered: false, probe: false, now: 0)
        gate.finish(delivered: false, probe: false, now: 0)
        #expect(!gate.wantsWork(now: 500_000), "open: no work")
        #expect(gate.wantsWork(now: 2_000_000) && gate.room(now: 2_000_000) == 1, "after the open period: one probe")
        #expect(gate.start(now: 2_000_000) == .probe)
        gate.finish(delivered: true, probe: true, now: 2_000_001)
        #expect(gate.breaker.state == .closed(failures: 0))
    }
}
