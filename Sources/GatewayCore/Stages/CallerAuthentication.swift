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

    /// What a connection keeps of its last token authentication. A keep-alive caller sends the same credentials on
    /// every request, and parsing and hashing its token again each time was 2% of a call's CPU. The memo answers
    /// only for the very snapshot it was made with (a reload that revokes, rotates or rebinds a caller makes a new
    /// one) and for the same `Authorization` bytes and client certificate; refusals are never kept.
    public struct Memo {
        weak var snapshot: GatewaySnapshot?
        var authorization = ""
        var fingerprint: String?
        var result: Result?

        /// An empty memo: the first request on a connection authenticates in full.
        public init() {}
    }

    /// One message for every failure, so a prober learns nothing about which part was wrong.
    static let refusal = GatewayError(.unauthenticated, "Authenticate with a valid bearer token or client certificate.")

    /// Makes the stage.
    public init() {}

    /// Authenticates the request against the snapshot's callers.
    public func authenticate<H: HeaderLookup>(_ request: IngressRequest<H>, in snapshot: GatewaySnapshot) throws(GatewayError) -> Result {
        var memo = Memo()
        return try authenticate(request, in: snapshot, memo: &memo)
    }

    /// Authenticates as `authenticate(_:in:)` does, answering from `memo` when the request presents exactly the
    /// credentials the memo's answer was made for, against the same snapshot; a new token answer replaces it.
    public func authenticate<H: HeaderLookup>(
        _ request: IngressRequest<H>, in snapshot: GatewaySnapshot, memo: inout Memo
    ) throws(GatewayError) -> Result {
        let presented = request.clientCertificateFingerprint?.lowercased()
        guard let authorization = try request.headers.single("authorization") else {
            // Certificate-only callers: the fingerprint must be registered to an active caller.
            guard let presented, let caller = snapshot.callersByFingerprint[presented] else { throw Self.refusal }
            return Result(caller, method: .certificate)
        }
        if let known = memo.result, memo.snapshot === snapshot, memo.fingerprint == presented,
            ConstantTime.equal(memo.authorization.utf8, authorization.utf8) {
            return known
        }
        let result = try authenticate(authorization: authorization, presented: presented, in: snapshot)
        memo.snapshot = snapshot
        memo.authorization = authorization
        memo.fingerprint = presented
        memo.result = result
        return result
    }

    private func authenticate(authorization: String, presented: String?, in snapshot: GatewaySnapshot) throws(GatewayError) -> Result {
        guard authorization.utf8.count > 7, ASCIICase.hasPrefix(authorization, lowercase: "bearer ") else { throw Self.refusal }
        guard let token = CallerToken.Presented(authorization[authorization.utf8.index(authorization.startIndex, offsetBy: 7)...]),
            let caller = snapshot.callersByTokenNumber[token.idNumber], let storedHash = caller.record.tokenHash,
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
