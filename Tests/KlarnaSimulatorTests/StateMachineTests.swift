import GatewayCore
import Testing
@testable import KlarnaSimulator

@Suite struct PaymentRequestStateTests {
    @Test func openStatesMoveAsDocumented() {
        #expect(PaymentRequestState.submitted.canMove(to: .inProgress))
        #expect(PaymentRequestState.submitted.canMove(to: .canceled))
        #expect(PaymentRequestState.submitted.canMove(to: .expired))
        #expect(!PaymentRequestState.submitted.canMove(to: .completed))
        #expect(PaymentRequestState.inProgress.canMove(to: .completed))
        #expect(PaymentRequestState.inProgress.canMove(to: .declined))
        #expect(PaymentRequestState.inProgress.canMove(to: .canceled))
    }

    @Test func finalStatesAreFinal() {
        for final in [PaymentRequestState.completed, .canceled, .expired, .declined] {
            #expect(final.isFinal)
            for next in PaymentRequestState.allCases { #expect(!final.canMove(to: next)) }
        }
    }

    @Test func customerPathGoesThroughInProgress() {
        #expect(PaymentRequestState.submitted.path(to: .completed) == [.inProgress, .completed])
        #expect(PaymentRequestState.submitted.path(to: .declined) == [.inProgress, .declined])
        #expect(PaymentRequestState.inProgress.path(to: .completed) == [.completed])
        #expect(PaymentRequestState.completed.path(to: .canceled) == nil)
        #expect(PaymentRequestState.inProgress.eventType == "payment.request.state-change.in-progress")
    }
}

@Suite struct TransactionLedgerTests {
    @Test func partialThenFullCaptureCompletes() throws {
        var ledger = TransactionLedger(authorized: 10_000)
        #expect(try ledger.capture(4_000) == 4_000)
        #expect(ledger.state == .authorized)
        #expect(ledger.remainingAuthorized == 6_000)
        #expect(try ledger.capture(nil) == 6_000)
        #expect(ledger.state == .completed)
    }

    @Test func captureNeverExceedsAuthorized() throws {
        var ledger = TransactionLedger(authorized: 1_000)
        _ = try ledger.capture(600)
        #expect(throws: TransactionLedger.Refusal.exceedsAuthorized(remaining: 400)) { try ledger.capture(401) }
        #expect(throws: TransactionLedger.Refusal.amountNotPositive) { try ledger.capture(0) }
        #expect(ledger.captured == 600)
    }

    @Test func refundNeverExceedsCaptured() throws {
        var ledger = TransactionLedger(authorized: 1_000)
        #expect(throws: TransactionLedger.Refusal.amountNotPositive) { try ledger.refund(nil) }
        _ = try ledger.capture(500)
        #expect(throws: TransactionLedger.Refusal.exceedsCaptured(refundable: 500)) { try ledger.refund(501) }
        #expect(try ledger.refund(200) == 200)
        #expect(throws: TransactionLedger.Refusal.exceedsCaptured(refundable: 300)) { try ledger.refund(301) }
        #expect(throws: TransactionLedger.Refusal.exceedsCapture(refundable: 100)) { try ledger.refund(150, captureRefundable: 100) }
    }

    @Test func voidReleasesTheRemainder() throws {
        var ledger = TransactionLedger(authorized: 1_000)
        _ = try ledger.capture(300)
        #expect(try ledger.void() == 700)
        #expect(ledger.state == .completed)
        #expect(throws: TransactionLedger.Refusal.wrongState(.completed)) { try ledger.capture(1) }
        var untouched = TransactionLedger(authorized: 1_000)
        _ = try untouched.void()
        #expect(untouched.state == .closed)
        #expect(throws: TransactionLedger.Refusal.wrongState(.closed)) { try untouched.reauthorize(2_000) }
    }

    @Test func reauthorizeExtendsButNotBelowCaptured() throws {
        var ledger = TransactionLedger(authorized: 1_000)
        _ = try ledger.capture(800)
        #expect(throws: TransactionLedger.Refusal.belowCaptured(captured: 800)) { try ledger.reauthorize(700) }
        try ledger.reauthorize(2_000)
        #expect(ledger.remainingAuthorized == 1_200)
        ledger.expire()
        #expect(ledger.state == .completed)
    }

    @Test func perTransactionLimits() throws {
        var ledger = TransactionLedger(authorized: 1_000_000)
        for _ in 0..<200 { _ = try ledger.capture(10) }
        #expect(throws: TransactionLedger.Refusal.limitReached("a transaction allows at most 200 captures")) { try ledger.capture(1) }
        for _ in 0..<200 { _ = try ledger.refund(1) }
        #expect(throws: TransactionLedger.Refusal.limitReached("a transaction allows at most 200 refunds")) { try ledger.refund(1) }
        for _ in 0..<100 { try ledger.touch() }
        #expect(ledger.operationCount == 500)
        #expect(throws: TransactionLedger.Refusal.limitReached("a transaction allows at most 500 operations")) { try ledger.touch() }
    }
}

@Suite struct FaultInjectorTests {
    @Test func countRulesAreSpent() {
        var injector = FaultInjector(rules: [FaultRule(kind: .error, pathPrefix: "/v2/accounts", count: 2)], seed: 1)
        #expect(injector.decide(method: "GET", path: "/v2/settlements", operationID: "listSettlements") == nil)
        #expect(injector.decide(method: "GET", path: "/v2/accounts/x", operationID: "readPartnerAccount")?.kind == .error)
        #expect(injector.decide(method: "GET", path: "/v2/accounts/x", operationID: "readPartnerAccount")?.kind == .error)
        #expect(injector.decide(method: "GET", path: "/v2/accounts/x", operationID: "readPartnerAccount") == nil)
        #expect(injector.rules.isEmpty)
    }

    @Test func ratesAreDeterministicUnderASeed() {
        func run(seed: UInt64) -> [Bool] {
            var injector = FaultInjector(rules: [FaultRule(kind: .latency, method: "GET", rate: 0.3)], seed: seed)
            return (0..<1000).map { _ in injector.decide(method: "GET", path: "/", operationID: nil) != nil }
        }
        let first = run(seed: 42)
        #expect(first == run(seed: 42))
        #expect(first != run(seed: 43))
        let fired = first.filter { $0 }.count
        #expect(fired > 230 && fired < 370)
    }

    @Test func matchesOnMethodAndOperation() {
        var injector = FaultInjector(rules: [FaultRule(kind: .reset, method: "post", operationID: "capturePaymentTransaction")], seed: 1)
        #expect(injector.decide(method: "GET", path: "/", operationID: "capturePaymentTransaction") == nil)
        #expect(injector.decide(method: "POST", path: "/", operationID: "readPaymentTransaction") == nil)
        #expect(injector.decide(method: "POST", path: "/", operationID: "capturePaymentTransaction")?.kind == .reset)
    }
}

@Suite struct RateLimiterTests {
    @Test func perAccountWindowAndHeaders() {
        var limiter = RateLimiter(perAccount: ["default": 50, "createPaymentRequest": 2], perAcquirer: ["default": 0])
        let t: Int64 = 1_000_000
        #expect(limiter.admit(account: "M1", acquirer: "A", operationID: "createPaymentRequest", category: "payment-request-management", nowMilliseconds: t) == nil)
        #expect(limiter.admit(account: "M1", acquirer: "A", operationID: "createPaymentRequest", category: "payment-request-management", nowMilliseconds: t + 10) == nil)
        let refused = limiter.admit(account: "M1", acquirer: "A", operationID: "createPaymentRequest", category: "payment-request-management", nowMilliseconds: t + 20)
        #expect(refused?.first { $0.0 == "X-Ratelimit-Limit" }?.1 == "2, 2;w=1;name=\"createPaymentRequest\"")
        #expect(refused?.first { $0.0 == "X-Ratelimit-Remaining" }?.1 == "0")
        // Another merchant and another category are separate buckets; the next second starts afresh.
        #expect(limiter.admit(account: "M2", acquirer: "A", operationID: "createPaymentRequest", category: "payment-request-management", nowMilliseconds: t + 20) == nil)
        #expect(limiter.admit(account: "M1", acquirer: "A", operationID: "readPaymentRequest", category: "payment-request-management", nowMilliseconds: t + 20) == nil)
        #expect(limiter.admit(account: "M1", acquirer: "A", operationID: "createPaymentRequest", category: "payment-request-management", nowMilliseconds: t + 1000) == nil)
    }

    @Test func perAcquirerLimitSpansMerchants() {
        var limiter = RateLimiter(perAccount: ["default": 0], perAcquirer: ["default": 3])
        for merchant in ["M1", "M2", "M3"] {
            #expect(limiter.admit(account: merchant, acquirer: "A", operationID: "x", category: "c", nowMilliseconds: 5_000) == nil)
        }
        #expect(limiter.admit(account: "M4", acquirer: "A", operationID: "x", category: "c", nowMilliseconds: 5_000) != nil)
        #expect(limiter.admit(account: "M4", acquirer: "B", operationID: "x", category: "c", nowMilliseconds: 5_000) == nil)
    }
}

@Suite struct SmallPartsTests {
    @Test func idempotencyReplaysAndConflicts() {
        var cache = IdempotencyCache()
        let response = SimulatorResponse(status: 201, body: [1, 2, 3])
        cache.store(key: "k", fingerprint: "f1", response: response, nowMilliseconds: 0)
        if case .replay(let replayed) = cache.lookup(key: "k", fingerprint: "f1", nowMilliseconds: 1000) { #expect(replayed.body == [1, 2, 3]) } else { Issue.record("no replay") }
        if case .conflict = cache.lookup(key: "k", fingerprint: "f2", nowMilliseconds: 1000) {} else { Issue.record("no conflict") }
        if case .miss = cache.lookup(key: "k", fingerprint: "f1", nowMilliseconds: IdempotencyCache.lifetimeMilliseconds + 1) {} else { Issue.record("did not expire") }
    }

    @Test func basicAuthorizationForms() {
        #expect(KeyRing.apiKey(fromAuthorization: "Basic klarna_test_api_abc") == "klarna_test_api_abc")
        let standard = "Basic " + Array(":klarna_test_api_abc".utf8).base64
        #expect(KeyRing.apiKey(fromAuthorization: standard) == "klarna_test_api_abc")
        #expect(KeyRing.apiKey(fromAuthorization: "Bearer klarna_test_api_abc") == nil)
        #expect(KeyRing.apiKey(fromAuthorization: "Basic !!!") == nil)
    }

    @Test func webhookSignatureIsLowercaseHexHMAC() {
        // RFC 4231 test case 2.
        let signature = WebhookDispatcher.signature(body: Array("what do ya want for nothing?".utf8), secret: "Jefe")
        #expect(signature == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func jsonRoundTrip() throws {
        let text = #"{"a":1,"b":[true,false,null],"c":"x\"y\n","d":-2.5,"e":{}}"#
        let value = try JSONValue.parse(text)
        #expect(value.text == text)
        #expect(value["a"]?.intValue == 1)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse("{\"a\":}") }
        #expect(try JSONValue.parse(#""\u00e9\ud83d\ude00""#).stringValue == "é😀")
    }

    @Test func timestampsAreISO8601() {
        #expect(SimulatorClock.iso8601(0) == "1970-01-01T00:00:00.000Z")
        #expect(SimulatorClock.iso8601(1_700_000_000_123) == "2023-11-14T22:13:20.123Z")
    }
}

extension Array where Element == UInt8 {
    /// Standard base64, for building Basic headers in tests.
    var base64: String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < count {
            let a = self[index], b = index + 1 < count ? self[index + 1] : 0, c = index + 2 < count ? self[index + 2] : 0
            out.append(alphabet[Int(a >> 2)])
            out.append(alphabet[Int((a & 3) << 4 | b >> 4)])
            out.append(index + 1 < count ? alphabet[Int((b & 15) << 2 | c >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < count ? alphabet[Int(c & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
