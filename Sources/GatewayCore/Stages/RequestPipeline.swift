/// A call the pipeline decided to forward: everything the transport, the rate limiter and the audit trail need.
///
/// A value with its fields in one shared box: the handler reads its plan at each step of a call (rate limit,
/// admission, attempt, send), and copying the facts, the target and the upstream head field by field at each step
/// cost dozens of reference counts. A copy is now one; a header added to `upstream` (the idempotency key the
/// transport generates) goes into the box in place while the plan holds the only reference to it.
public struct ForwardPlan: Sendable {
    // Unchecked: `upstream` changes only through `addUpstreamHeader`, on a box no other plan shares.
    @usableFromInline final class Storage: @unchecked Sendable {
        @usableFromInline let facts: CallFacts
        @usableFromInline let target: CallTarget
        @usableFromInline var upstream: UpstreamRequestHead
        @usableFromInline let callerRateLimit: LimitSpec?

        @usableFromInline init(facts: CallFacts, target: CallTarget, upstream: UpstreamRequestHead, callerRateLimit: LimitSpec?) {
            self.facts = facts
            self.target = target
            self.upstream = upstream
            self.callerRateLimit = callerRateLimit
        }
    }

    @usableFromInline var storage: Storage

    /// What the stages learned, for the audit record.
    @inlinable public var facts: CallFacts { storage.facts }
    /// Who the call acts for.
    @inlinable public var target: CallTarget { storage.target }
    /// The head to send upstream.
    @inlinable public var upstream: UpstreamRequestHead { storage.upstream }
    /// The caller's caller-level rate limit, as the snapshot resolved it.
    @inlinable public var callerRateLimit: LimitSpec? { storage.callerRateLimit }

    /// Makes a plan.
    public init(facts: CallFacts, target: CallTarget, upstream: UpstreamRequestHead, callerRateLimit: LimitSpec?) {
        storage = Storage(facts: facts, target: target, upstream: upstream, callerRateLimit: callerRateLimit)
    }

    /// Adds a header to the upstream head (`UpstreamRequestHead.addHeader`), copying the box first if another
    /// plan shares it.
    public mutating func addUpstreamHeader(_ name: String, _ value: String) {
        if !isKnownUniquelyReferenced(&storage) {
            storage = Storage(facts: storage.facts, target: storage.target, upstream: storage.upstream, callerRateLimit: storage.callerRateLimit)
        }
        storage.upstream.addHeader(name, value)
    }
}

/// A refusal with what was known when it happened.
public struct Refusal: Error, Sendable {
    /// The error sent to the caller.
    public let error: GatewayError
    /// What the stages had learned, for the audit record.
    public let facts: CallFacts
}

/// The pure part of a request's way through the gateway, stage by stage, in one direction.
///
/// Each stage either adds to `CallFacts` or ends the call with a `GatewayError`; nothing here does I/O, so the
/// whole decision is tested without sockets. Rate limiting and audit, which hold state, run after it in the
/// transport.
public struct RequestPipeline: Sendable {
    let authentication = CallerAuthentication()
    let matching = OperationMatching()
    let resolution = TargetResolution()
    let releaseSelection = ReleaseSelection()
    let environmentGuard = EnvironmentGuard()
    let injection = CredentialInjection()

    /// Makes the pipeline.
    public init() {}

    /// Runs every pure stage for a request head; `today` (`YYYY-MM-DD`, UTC) decides release availability.
    /// `correlationID` is the `Partner-Correlation-Id` to send when the caller sent none (a traced call's trace
    /// id); without it one is made from `requestID`.
    public func plan<H: HeaderLookup>(
        _ request: IngressRequest<H>, requestID: String, snapshot: GatewaySnapshot, today: String, correlationID: String? = nil
    ) -> Result<ForwardPlan, Refusal> {
        plan(request, requestID: requestID, snapshot: snapshot, today: today, correlationID: correlationID, cache: nil)
    }

    /// Plans as `plan(_:requestID:snapshot:today:correlationID:)` does, with an authentication memo
    /// (`CallerAuthentication.Memo`): the data plane gives each caller connection its event loop's token cache.
    public func plan<H: HeaderLookup>(
        _ request: IngressRequest<H>, requestID: String, snapshot: GatewaySnapshot, today: String, correlationID: String? = nil,
        memo: inout CallerAuthentication.Memo
    ) -> Result<ForwardPlan, Refusal> {
        plan(request, requestID: requestID, snapshot: snapshot, today: today, correlationID: correlationID, cache: memo.ownCache)
    }

    private func plan<H: HeaderLookup>(
        _ request: IngressRequest<H>, requestID: String, snapshot: GatewaySnapshot, today: String, correlationID: String?,
        cache: CallerTokenCache?
    ) -> Result<ForwardPlan, Refusal> {
        var facts = CallFacts()
        do throws(GatewayError) {
            let caller = try authentication.authenticate(request, in: snapshot, cache: cache)
            facts.callerID = caller.caller.id
            facts.authentication = caller.method
            let target = try RequestTarget(parsing: request.target)
            facts.target = target
            let match = try matching.match(method: request.method, target: target, in: snapshot)
            facts.operation = match.operation
            let callTarget = try resolution.resolve(
                operation: match.operation, segments: match.segments, headers: request.headers, caller: caller.caller,
                in: snapshot
            )
            // Each read of `partner` or `merchant` copies the value out of the enum, a reference count per field.
            let partner = callTarget.partner
            let merchant = callTarget.merchant
            facts.partnerID = partner.record.id
            facts.merchantID = merchant?.record.id
            facts.account = merchant?.record.account.rawValue
            let partnerEnvironment = partner.record.environment
            facts.environment = partnerEnvironment
            let (releaseID, source) = try releaseSelection.effectiveID(
                target: callTarget, environment: partnerEnvironment, headers: request.headers,
                grant: snapshot.access.callers[caller.caller.id] ?? Grant(), policy: snapshot.releases,
                rollouts: snapshot.rollouts, today: today
            )
            // Recorded before the checks, so a release refusal's record names the release.
            facts.release = releaseID
            let release = try releaseSelection.check(
                id: releaseID, source: source, operation: match.operation, environment: partnerEnvironment,
                policy: snapshot.releases, today: today)
            let endpoint = release.endpoint ?? partner.endpoint
            let environment = try environmentGuard.check(callTarget, endpoint: endpoint, settings: snapshot.settings)
            facts.environment = environment
            let upstream = injection.inject(
                method: request.method, target: target, segments: match.segments, operation: match.operation,
                callTarget: callTarget, endpoint: endpoint, headers: request.headers, requestID: requestID,
                settings: snapshot.settings, correlationID: correlationID
            )
            return .success(ForwardPlan(facts: facts, target: callTarget, upstream: upstream, callerRateLimit: caller.rateLimit))
        } catch {
            return .failure(Refusal(error: error, facts: facts))
        }
    }
}
