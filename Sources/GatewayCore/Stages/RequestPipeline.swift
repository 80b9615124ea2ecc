/// A call the pipeline decided to forward: everything the transport, the rate limiter and the audit trail need.
public struct ForwardPlan: Sendable {
    /// What the stages learned, for the audit record.
    public let facts: CallFacts
    /// Who the call acts for.
    public let target: CallTarget
    /// The head to send upstream.
    public var upstream: UpstreamRequestHead
    /// The caller's caller-level rate limit, as the snapshot resolved it.
    public let callerRateLimit: LimitSpec?
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
        var facts = CallFacts()
        do throws(GatewayError) {
            let caller = try authentication.authenticate(request, in: snapshot)
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
            facts.partnerID = callTarget.partner.record.id
            facts.merchantID = callTarget.merchant?.record.id
            facts.account = callTarget.merchant?.record.account.rawValue
            let partnerEnvironment = callTarget.partner.record.environment
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
            let endpoint = release.endpoint ?? callTarget.partner.endpoint
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
