import GatewayCore
import Testing

@Suite("Request pipeline decisions")
struct RequestPipelineTests {
    let pipeline = RequestPipeline()
    let snapshot = Fixtures.snapshot()
    static let readTransaction = "/payment/transactions/krn:payment:eu1:transaction:6debe89e"

    func plan(_ method: String = "GET", _ target: String, _ headers: [(String, String)], fingerprint: String? = nil, snapshot: GatewaySnapshot? = nil) -> Result<ForwardPlan, Refusal> {
        pipeline.plan(
            IngressRequest(method: method, target: target, headers: HeaderList(headers), clientCertificateFingerprint: fingerprint),
            requestID: "3f2a6c1e-0000-4000-8000-000000000001", snapshot: snapshot ?? self.snapshot, today: "2026-11-28")
    }

    func refusalCode(_ result: Result<ForwardPlan, Refusal>) -> GatewayError.Code? {
        if case .failure(let refusal) = result { return refusal.error.code }
        return nil
    }

    @Test("a granted merchant by gateway id is forwarded with the KRN in the path and the partner's key")
    func forwardsByID() throws {
        let plan = try plan("GET", "/v2/accounts/m1" + Self.readTransaction + "?expand=captures", [("Host", "gw"), Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "m1"), ("traceparent", "00-x"), ("X-Custom", "kept")]).get()
        #expect(plan.upstream.target == "/v2/accounts/krn:partner:global:account:test:M1" + Self.readTransaction + "?expand=captures")
        let headers = Dictionary(plan.upstream.headers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
        #expect(headers["authorization"] == "Basic " + Fixtures.testKey.exposedValue)
        #expect(headers["host"] == "api-global.test.klarna.com")
        #expect(headers["x-custom"] == "kept")
        #expect(headers["traceparent"] == nil)
        #expect(headers["klarna-gateway-merchant"] == nil)
        #expect(headers["partner-correlation-id"] == "3f2a6c1e000040008000000000000001")
        #expect(headers["klarna-integration-metadata"] != nil)
        #expect(plan.facts.merchantID == "m1")
        #expect(plan.facts.operation?.id != nil)
        #expect(plan.upstream.credential.id == "partner:acq:api-key")
    }

    @Test("grants by group and by partner reach the merchants they name")
    func grantsBySelector() {
        #expect(refusalCode(plan("GET", "/v2/accounts/krn:partner:global:account:test:M2" + Self.readTransaction, [("Host", "gw"), Fixtures.bearer("checkout")])) == nil)
        #expect(refusalCode(plan("GET", "/v2/accounts/m3" + Self.readTransaction, [("Host", "gw"), Fixtures.bearer("orders")])) == nil)
        #expect(refusalCode(plan("GET", "/v2/accounts/m3" + Self.readTransaction, [("Host", "gw"), Fixtures.bearer("checkout")])) == .forbidden)
    }

    @Test("an unknown merchant and an ungranted one get the same refusal")
    func hidesExistence() throws {
        let unknown = plan("GET", "/v2/accounts/m_nope" + Self.readTransaction, [Fixtures.bearer("checkout")])
        let ungranted = plan("GET", "/v2/accounts/m3" + Self.readTransaction, [Fixtures.bearer("checkout")])
        guard case .failure(let a) = unknown, case .failure(let b) = ungranted else {
            Issue.record("both should be refused")
            return
        }
        #expect(a.error == b.error)
        #expect(a.error.code == .forbidden)
    }

    @Test("an account segment that is neither a KRN nor a possible merchant id is a bad request, not an unknown merchant",
          arguments: ["m1:m3", "m1%41", "KRN:partner:global:account:test:M1", "m..1x" + String(repeating: "x", count: 64)])
    func malformedAccountSegment(_ segment: String) {
        #expect(refusalCode(plan("GET", "/v2/accounts/\(segment)" + Self.readTransaction, [Fixtures.bearer("checkout")])) == .badRequest)
    }

    @Test("a family the caller was not granted is refused")
    func familyGrant() {
        #expect(refusalCode(plan("GET", "/v2/accounts/m1/payment/disputes", [Fixtures.bearer("checkout")])) == .forbidden)
        #expect(refusalCode(plan("POST", "/v2/accounts/m3/payment/requests", [Fixtures.bearer("orders")])) == .forbidden)
    }

    @Test("header and path must name the same merchant")
    func headerAndPath() {
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "m2")])) == .badRequest)
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "m3")])) == .badRequest)
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "nope")])) == .forbidden)
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "m1"), ("Klarna-Gateway-Merchant", "m1")])) == .badRequest)
    }

    @Test("a suspended merchant is refused as suspended only to callers who may see it")
    func suspended() {
        #expect(refusalCode(plan("GET", "/v2/accounts/m4" + Self.readTransaction, [Fixtures.bearer("checkout")])) == .merchantSuspended)
        #expect(refusalCode(plan("GET", "/v2/accounts/m4/payment/disputes", [Fixtures.bearer("orders")])) == .forbidden)
    }

    @Test("wrong, revoked, malformed and duplicate tokens are 401", arguments: [
        [("Authorization", "Bearer kgw_0123456789abcdef_" + String(repeating: "a", count: 43))],
        [("Authorization", "Basic abc")],
        [("Authorization", "Bearer ")],
        [],
    ] as [[(String, String)]])
    func unauthenticated(_ headers: [(String, String)]) {
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, headers)) == .unauthenticated)
    }

    @Test("a revoked caller is 401")
    func revoked() {
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("ops")])) == .unauthenticated)
    }

    @Test("a connection's authentication memo answers only the same credentials against the same snapshot")
    func authenticationMemo() {
        let path = "/v2/accounts/m1" + Self.readTransaction
        var memo = CallerAuthentication.Memo()
        func code(_ headers: [(String, String)], fingerprint: String? = nil, in snapshot: GatewaySnapshot) -> GatewayError.Code? {
            refusalCode(pipeline.plan(
                IngressRequest(method: "GET", target: path, headers: HeaderList(headers), clientCertificateFingerprint: fingerprint),
                requestID: "3f2a6c1e-0000-4000-8000-000000000002", snapshot: snapshot, today: "2026-11-28", memo: &memo))
        }
        #expect(code([Fixtures.bearer("checkout")], in: snapshot) == nil)
        #expect(code([Fixtures.bearer("checkout")], in: snapshot) == nil, "the memo's own credentials")
        // Another token, a wrong one, or the same token with a certificate of someone else: decided in full.
        let wrong = ("Authorization", "Bearer kgw_" + CallerToken.generate().id + "_" + String(repeating: "a", count: 43))
        #expect(code([wrong], in: snapshot) == .unauthenticated)
        #expect(code([Fixtures.bearer("checkout")], fingerprint: Fixtures.certOnlyFingerprint, in: snapshot) == .unauthenticated)
        #expect(code([Fixtures.bearer("checkout")], in: snapshot) == nil, "a refusal does not spoil the memo")
        // A reload that revokes the caller makes a new snapshot: the memo no longer answers.
        #expect(code([Fixtures.bearer("checkout")], in: Fixtures.snapshot(revoked: ["checkout"])) == .unauthenticated)
        // A bound caller's memo does not answer the same token without its certificate.
        #expect(code([Fixtures.bearer("bound")], fingerprint: Fixtures.boundFingerprint, in: snapshot) == nil)
        #expect(code([Fixtures.bearer("bound")], in: snapshot) == .unauthenticated)
    }

    @Test("two Authorization headers are a bad request")
    func twoAuthorizations() {
        #expect(refusalCode(plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), Fixtures.bearer("orders")])) == .badRequest)
    }

    @Test("a certificate-bound caller needs its certificate; a token with someone else's certificate is refused")
    func certificateBinding() {
        let path = "/v2/accounts/m1" + Self.readTransaction
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("bound")])) == .unauthenticated)
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("bound")], fingerprint: String(repeating: "00", count: 32))) == .unauthenticated)
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("bound")], fingerprint: Fixtures.boundFingerprint)) == nil)
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("checkout")], fingerprint: Fixtures.certOnlyFingerprint)) == .unauthenticated)
        #expect(refusalCode(plan("GET", path, [], fingerprint: Fixtures.certOnlyFingerprint)) == nil)
        #expect(refusalCode(plan("GET", path, [], fingerprint: String(repeating: "00", count: 32))) == .unauthenticated)
    }

    @Test("acquirer-scoped calls name their partner or use the only one granted")
    func acquirerScope() throws {
        let plan = try plan("GET", "/v2/notification/webhooks", [Fixtures.bearer("checkout")]).get()
        #expect(plan.target.partner.record.id == "acq")
        #expect(plan.upstream.target == "/v2/notification/webhooks")
        #expect(refusalCode(self.plan("GET", "/v2/notification/webhooks", [Fixtures.bearer("checkout"), ("Klarna-Gateway-Partner", "acq_live")])) == .forbidden)
        #expect(refusalCode(self.plan("GET", "/v2/notification/webhooks", [Fixtures.bearer("orders")])) == .badRequest)
    }

    @Test("direct-model calls use the merchant's own key")
    func direct() throws {
        let plan = try plan("POST", "/v2/payment/requests", [Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "m2"), ("Content-Length", "2")]).get()
        let authorization = plan.upstream.headers.first { $0.0 == "Authorization" }?.1
        #expect(authorization == "Basic " + Fixtures.merchantOwnKey.exposedValue)
        #expect(refusalCode(self.plan("POST", "/v2/payment/requests", [Fixtures.bearer("checkout"), ("Klarna-Gateway-Merchant", "m1")])) == .forbidden)
        #expect(refusalCode(self.plan("POST", "/v2/payment/requests", [Fixtures.bearer("checkout")])) == .badRequest)
    }

    @Test("environment disagreements never leave the gateway")
    func environmentGuard() {
        let path = "/v2/accounts/m1" + Self.readTransaction
        // Test merchant under a partner routed at Klarna's live host.
        let liveHost = Fixtures.snapshot(partners: [Fixtures.partner("acq", baseURL: "https://api-global.klarna.com")])
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("checkout")], snapshot: liveHost)) == .environmentMismatch)
        // Test partner holding a live key.
        let liveKey = Fixtures.snapshot(partners: [Fixtures.partner("acq", key: Fixtures.liveKey)])
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("checkout")], snapshot: liveKey)) == .environmentMismatch)
        // A host nobody configured.
        let unknownHost = Fixtures.snapshot(partners: [Fixtures.partner("acq", baseURL: "https://evil.example")])
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("checkout")], snapshot: unknownHost)) == .upstreamUnavailable)
        // A configured simulator host serves test.
        let simulator = Fixtures.snapshot(partners: [Fixtures.partner("acq", baseURL: "https://localhost:9443")], egress: [EgressRule(host: "localhost:9443", environment: .test)])
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("checkout")], snapshot: simulator)) == nil)
        // A live KRN on a test partner.
        let mixed = Fixtures.snapshot(merchants: [Fixtures.merchant("m1", account: "krn:partner:global:account:live:M1")])
        #expect(refusalCode(plan("GET", path, [Fixtures.bearer("checkout")], snapshot: mixed)) == .environmentMismatch)
    }

    @Test("unknown operations are 404 with the gateway's code")
    func unknownOperation() {
        #expect(refusalCode(plan("GET", "/v2/accounts/m1/nothing", [Fixtures.bearer("checkout")])) == .unknownOperation)
        #expect(refusalCode(plan("BREW", "/v2/accounts/m1/payment/requests", [Fixtures.bearer("checkout")])) == .unknownOperation)
    }

    @Test("with forwarding of unknown operations on, they go through for callers granted every family, as 'unknown'")
    func unknownOperationsForwarded() throws {
        let forwarding = Fixtures.snapshot(forwardUnknown: true)
        let plan = try plan("POST", "/v2/accounts/m1/payment/brand-new-thing", [Fixtures.bearer("everything")], snapshot: forwarding).get()
        #expect(plan.facts.operation?.id == "unknown")
        #expect(plan.upstream.target == "/v2/accounts/krn:partner:global:account:test:M1/payment/brand-new-thing")
        #expect(refusalCode(self.plan("POST", "/v2/accounts/m1/payment/brand-new-thing", [Fixtures.bearer("checkout")], snapshot: forwarding)) == .forbidden)
        let acquirer = try self.plan("GET", "/v2/notification/new-thing", [Fixtures.bearer("everything"), ("Klarna-Gateway-Partner", "acq")], snapshot: forwarding).get()
        #expect(acquirer.target.partner.record.id == "acq")
        #expect(refusalCode(self.plan("POST", "/v2/accounts/m1/payment/brand-new-thing", [Fixtures.bearer("everything")])) == .unknownOperation)
    }

    @Test("a caller's correlation id is kept, Connection-named headers are dropped")
    func headerHandling() throws {
        let plan = try plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), ("Partner-Correlation-Id", "abc123"), ("Connection", "X-Hop"), ("X-Hop", "1")]).get()
        let names = plan.upstream.headers.map { $0.0.lowercased() }
        #expect(!names.contains("x-hop"))
        #expect(!names.contains("connection"))
        #expect(plan.upstream.correlationID == "abc123")
        #expect(names.filter { $0 == "partner-correlation-id" }.count == 1)
    }

    @Test("dropped headers are found in any case; Connection names only make a second pass when they add one")
    func droppedHeaderNames() throws {
        let plan = try plan("GET", "/v2/accounts/m1" + Self.readTransaction, [
            Fixtures.bearer("checkout"), ("TraceParent", "00-x"), ("KEEP-ALIVE", "5"), ("Connection", "keep-alive, X-HOP , close"),
            ("x-hop", "1"), ("X-Hot", "kept"), ("Partner-Correlation-ID", "c1"), ("Klarna-Integration-Metadata", "{}"),
        ]).get()
        let names = plan.upstream.headers.map { $0.0.lowercased() }
        for dropped in ["traceparent", "keep-alive", "connection", "x-hop"] { #expect(!names.contains(dropped), "\(dropped) was sent") }
        #expect(names.contains("x-hot"))
        #expect(plan.upstream.correlationID == "c1")
        #expect(names.filter { $0 == "klarna-integration-metadata" }.count == 1)
        // A Connection header naming only what is dropped anyway keeps the caller's other headers.
        let plain = try self.plan("GET", "/v2/accounts/m1" + Self.readTransaction, [Fixtures.bearer("checkout"), ("Connection", "close"), ("X-Hop", "1")]).get()
        #expect(plain.upstream.headers.map { $0.0 }.contains("X-Hop"))

        let set = HeaderNameSet(["TE", "x-b3-spanid"])
        #expect(set.contains("te") && set.contains("Te") && set.contains("X-B3-SPANID"))
        #expect(!set.contains("tf") && !set.contains("x-b3-spanix") && !set.contains("") && !set.contains(String(repeating: "x", count: 64)))
    }

    @Test("refusals render in Klarna's error shape")
    func errorShape() {
        let json = GatewayError(.forbidden, "no \"way\"").klarnaJSON(errorID: "id-1")
        #expect(json == #"{"error_id":"id-1","error_type":"RESOURCE_ERROR","error_code":"GATEWAY_FORBIDDEN","error_message":"no \"way\""}"#)
    }
}
