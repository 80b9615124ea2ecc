/// Stage 1: who is calling. A bearer token, a verified client certificate, or both bound together.
public struct CallerAuthentication: Sendable {
    /// The authenticated caller and how.
    public struct Result: Sendable {
        /// The caller.
        public let caller: CallerRecord
        /// How it proved itself.
        public let method: AuthenticationMethod
        /// Its caller-level rate limit, as the snapshot resolved it.
        public let rateLimit: LimitSpec?

        init(_ state: CallerState, method: AuthenticationMethod) {
            caller = state.record
            self.method = method
            rateLimit = state.rateLimit
        }
    }

    /// Where token answers are kept between requests (`CallerTokenCache`). The data plane gives every connection its
    /// event loop's cache; a memo made with `init()` keeps one answer of its own, as a connection's memo once did.
    public struct Memo {
        var cache: CallerTokenCache?

        /// An empty memo of its own: the first request authenticates in full, and its answer is kept for the next.
        public init() {}

        /// A memo that is `cache`, shared by every connection of the event loop that owns it.
        public init(sharing cache: CallerTokenCache) { self.cache = cache }

        /// The cache, made on first use for a memo of its own.
        var ownCache: CallerTokenCache {
            mutating get {
                if let cache { return cache }
                let made = CallerTokenCache(capacity: 1)
                cache = made
                return made
            }
        }
    }

    /// One message for every failure, so a prober learns nothing about which part was wrong.
    static let refusal = GatewayError(.unauthenticated, "Authenticate with a valid bearer token or client certificate.")

    /// Makes the stage.
    public init() {}

    /// Authenticates the request against the snapshot's callers.
    public func authenticate<H: HeaderLookup>(_ request: IngressRequest<H>, in snapshot: GatewaySnapshot) throws(GatewayError) -> Result {
        try authenticate(request, in: snapshot, cache: nil)
    }

    /// Authenticates as `authenticate(_:in:)` does, answering from `memo` when the request presents exactly the
    /// credentials a kept answer was made for, against the same snapshot; a new token answer is kept there.
    public func authenticate<H: HeaderLookup>(
        _ request: IngressRequest<H>, in snapshot: GatewaySnapshot, memo: inout Memo
    ) throws(GatewayError) -> Result {
        try authenticate(request, in: snapshot, cache: memo.ownCache)
    }

    /// Authenticates, answering from and keeping answers in `cache` when there is one.
    func authenticate<H: HeaderLookup>(
        _ request: IngressRequest<H>, in snapshot: GatewaySnapshot, cache: CallerTokenCache?
    ) throws(GatewayError) -> Result {
        let presented = request.clientCertificateFingerprint?.lowercased()
        guard let authorization = try request.headers.single("authorization") else {
            // Certificate-only callers: the fingerprint must be registered to an active caller.
            guard let presented, let caller = snapshot.callersByFingerprint[presented] else { throw Self.refusal }
            return Result(caller, method: .certificate)
        }
        guard authorization.utf8.count > 7, ASCIICase.hasPrefix(authorization, lowercase: "bearer "),
            let token = CallerToken.Presented(authorization[authorization.utf8.index(authorization.startIndex, offsetBy: 7)...])
        else { throw Self.refusal }
        let number = token.idNumber
        if let known = cache?.answer(token: number, authorization: authorization, fingerprint: presented, in: snapshot) {
            return known
        }
        let result = try authenticate(token, number: number, presented: presented, in: snapshot)
        cache?.keep(result, token: number, authorization: authorization, fingerprint: presented, in: snapshot)
        return result
    }

    private func authenticate(_ token: CallerToken.Presented, number: UInt64, presented: String?, in snapshot: GatewaySnapshot) throws(GatewayError) -> Result {
        guard let caller = snapshot.callersByTokenNumber[number], let storedHash = caller.record.tokenHash,
            token.matches(storedHash: storedHash)
        else { throw Self.refusal }
        let method = Self.tokenMethod(
            holder: caller.record.id, bound: caller.record.certificateFingerprint, presented: presented,
            holderOfPresented: { snapshot.callersByFingerprint[$0]?.record.id })
        guard let method else { throw Self.refusal }
        return Result(caller, method: method)
    }

    /// How a valid token's holder stands with the client certificate presented beside it, or nil to refuse: the one
    /// rule for callers and admins alike. `presented` is the lowercase fingerprint of the verified certificate;
    /// `holderOfPresented` names whoever holds that certificate, asked only when the token is not bound.
    public static func tokenMethod<ID: Equatable>(
        holder: ID, bound: String?, presented: String?, holderOfPresented: (String) throws -> ID?
    ) rethrows -> AuthenticationMethod? {
        if let bound = bound?.lowercased() {
            // A certificate-bound token must come with exactly its certificate.
            guard let presented, ConstantTime.equal(bound.utf8, presented.utf8) else { return nil }
            return .tokenAndCertificate
        }
        if let presented, let owner = try holderOfPresented(presented), owner != holder {
            // A's token with B's certificate: someone holds parts of two identities.
            return nil
        }
        return presented == nil ? .token : .tokenAndCertificate
    }
}
