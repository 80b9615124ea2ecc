import GatewayCore
import Testing

/// The event loop's token cache (`CallerTokenCache`) answers only what a full authentication would answer: against
/// the snapshot it was filled from, for exactly the credentials it was filled with, and it stays bounded.
@Suite("Caller token cache")
struct CallerTokenCacheTests {
    let authentication = CallerAuthentication()
    let snapshot = Fixtures.snapshot()

    /// One request's authentication through a connection's view of `cache`.
    func authenticate(
        _ headers: [(String, String)], fingerprint: String? = nil, in snapshot: GatewaySnapshot, cache: CallerTokenCache
    ) -> Result<CallerAuthentication.Result, GatewayError> {
        var memo = CallerAuthentication.Memo(sharing: cache)
        let request = IngressRequest(method: "GET", target: "/", headers: HeaderList(headers), clientCertificateFingerprint: fingerprint)
        return Result { () throws(GatewayError) in try authentication.authenticate(request, in: snapshot, memo: &memo) }
    }

    func callerID(_ result: Result<CallerAuthentication.Result, GatewayError>) -> String? {
        try? result.get().caller.id
    }

    @Test("connections sharing a cache share its answers, one entry per caller")
    func shared() {
        let cache = CallerTokenCache()
        #expect(callerID(authenticate([Fixtures.bearer("checkout")], in: snapshot, cache: cache)) == "checkout")
        #expect(callerID(authenticate([Fixtures.bearer("checkout")], in: snapshot, cache: cache)) == "checkout")
        #expect(callerID(authenticate([Fixtures.bearer("orders")], in: snapshot, cache: cache)) == "orders")
        #expect(cache.count == 2)
    }

    @Test("a new snapshot empties the cache: a caller revoked in it is refused, a changed limit is read from it")
    func snapshotChange() {
        let cache = CallerTokenCache()
        #expect(callerID(authenticate([Fixtures.bearer("checkout")], in: snapshot, cache: cache)) == "checkout")
        #expect(callerID(authenticate([Fixtures.bearer("orders")], in: snapshot, cache: cache)) == "orders")
        let revoked = Fixtures.snapshot(revoked: ["checkout"])
        #expect(authenticate([Fixtures.bearer("checkout")], in: revoked, cache: cache).refusalCode == .unauthenticated)
        let limited = Fixtures.snapshot(rateLimits: RateLimitPolicy(caller: LimitSpec(rate: 7)))
        #expect((try? authenticate([Fixtures.bearer("orders")], in: limited, cache: cache).get().rateLimit) == LimitSpec(rate: 7))
        #expect(cache.count == 1, "the old snapshot's answers are gone")
    }

    @Test("only exactly the kept credentials are answered: another secret under the same token id is refused")
    func sameIDOtherSecret() throws {
        let cache = CallerTokenCache()
        #expect(callerID(authenticate([Fixtures.bearer("checkout")], in: snapshot, cache: cache)) == "checkout")
        let token = Fixtures.tokens["checkout"]!
        let forged = "kgw_\(token.id)_" + String(repeating: "a", count: 43)
        try #require(forged != token.rendered.exposedValue)
        #expect(authenticate([("Authorization", "Bearer " + forged)], in: snapshot, cache: cache).refusalCode == .unauthenticated)
        #expect(cache.count == 1, "a refusal is not kept")
        #expect(callerID(authenticate([Fixtures.bearer("checkout")], in: snapshot, cache: cache)) == "checkout")
    }

    @Test("a bound caller's answer is not given without its certificate, nor a token's with someone else's")
    func certificates() {
        let cache = CallerTokenCache()
        #expect(callerID(authenticate([Fixtures.bearer("bound")], fingerprint: Fixtures.boundFingerprint, in: snapshot, cache: cache)) == "bound")
        #expect(authenticate([Fixtures.bearer("bound")], in: snapshot, cache: cache).refusalCode == .unauthenticated)
        #expect(callerID(authenticate([Fixtures.bearer("checkout")], in: snapshot, cache: cache)) == "checkout")
        #expect(authenticate([Fixtures.bearer("checkout")], fingerprint: Fixtures.certOnlyFingerprint, in: snapshot, cache: cache).refusalCode == .unauthenticated)
    }

    @Test("it keeps at most its capacity, and callers beyond it still authenticate")
    func bounded() {
        let cache = CallerTokenCache(capacity: 2)
        for caller in ["checkout", "orders", "everything", "checkout", "orders"] {
            #expect(callerID(authenticate([Fixtures.bearer(caller)], in: snapshot, cache: cache)) == caller)
            #expect(cache.count <= 2)
        }
        #expect(cache.count == 2)
    }
}

extension Result<CallerAuthentication.Result, GatewayError> {
    /// The refusal's code, nil when authenticated.
    var refusalCode: GatewayError.Code? {
        if case .failure(let error) = self { return error.code }
        return nil
    }
}
