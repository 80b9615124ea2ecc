/// Where a call's effective release came from, in precedence order.
public enum ReleaseSource: String, Sendable {
    /// `Klarna-Gateway-Release`, from a caller granted `release-override`.
    case override
    /// The merchant's own pin.
    case merchant
    /// A staged roll-out that includes the merchant.
    case rollout
    /// The merchant's group pin.
    case group
    /// The partner's default.
    case partner
    /// The newest release available in the environment today.
    case latest
}

/// Stage: choose the effective release and check that the operation exists in it and in the environment.
///
/// Nothing on the wire names Klarna's release, so the gateway enforces what the acquirer certified: a merchant
/// pinned to a release can call only what that release offers, where it is available.
public struct ReleaseSelection: Sendable {
    /// Header a granted caller sends to try another release.
    public static let overrideHeader = "klarna-gateway-release"

    /// The outcome: the release, why it was chosen, and the base URL the release routes to, if not the partner's.
    public struct Choice: Sendable {
        /// The effective release.
        public let release: Release
        /// Where it came from.
        public let source: ReleaseSource
        /// A release-specific upstream, if configured.
        public let endpoint: UpstreamEndpoint?
    }

    /// Makes the stage.
    public init() {}

    /// Chooses the release for a call and checks the operation against it; `today` is `YYYY-MM-DD` (UTC).
    public func choose<H: HeaderLookup>(
        operation: Operation, target: CallTarget, environment: KlarnaEnvironment, headers: H, grant: Grant,
        policy: ReleasePolicy, rollouts: [Rollout], today: String
    ) throws(GatewayError) -> Choice {
        let (id, source) = try effectiveID(target: target, environment: environment, headers: headers, grant: grant, policy: policy, rollouts: rollouts, today: today)
        return try check(id: id, source: source, operation: operation, environment: environment, policy: policy, today: today)
    }

    /// Checks an effective release: known, available in the environment, offering the operation.
    public func check(
        id: String, source: ReleaseSource, operation: Operation, environment: KlarnaEnvironment, policy: ReleasePolicy, today: String
    ) throws(GatewayError) -> Choice {
        guard let release = policy.release(id), let ordinal = policy.ordinal(of: id) else {
            throw GatewayError(.releaseNotAvailable, "Release '\(id)' is not in the gateway's release calendar.")
        }
        guard release.isAvailable(in: environment, on: today) else {
            let when = release.availableFrom(environment).map { "from \($0)" } ?? "on no scheduled date"
            throw GatewayError(.releaseNotAvailable, "Release \(id) (\(source.rawValue)) is available in \(environment.rawValue) \(when).")
        }
        if operation.testOnly && environment == .live {
            throw GatewayError(.operationNotAvailable, "\(operation.id) is offered in Klarna's test environment only.")
        }
        if let introduced = policy.ordinal(of: operation.introducedIn), introduced > ordinal {
            throw GatewayError(
                .operationNotInRelease,
                "\(operation.id) is introduced in \(operation.introducedIn); the effective release is \(id) (\(source.rawValue)).")
        }
        let endpoint = policy.upstreams[id]?[environment.rawValue].flatMap(UpstreamEndpoint.init(baseURL:))
        return Choice(release: release, source: source, endpoint: endpoint)
    }

    /// The effective release id and where it came from (override, pin, roll-out, group, partner, latest).
    public func effectiveID<H: HeaderLookup>(
        target: CallTarget, environment: KlarnaEnvironment, headers: H, grant: Grant, policy: ReleasePolicy,
        rollouts: [Rollout], today: String
    ) throws(GatewayError) -> (String, ReleaseSource) {
        if let requested = try headers.single(Self.overrideHeader) {
            guard grant.mayOverrideRelease else {
                throw GatewayError(.forbidden, "The caller is not granted release-override.")
            }
            return (requested, .override)
        }
        guard let chosen = Self.configuredRelease(
            merchant: target.merchant?.record, partner: target.partner.record, environment: environment, policy: policy,
            rollouts: rollouts, today: today)
        else {
            throw GatewayError(.releaseNotAvailable, "No release is available in \(environment.rawValue) yet.")
        }
        return chosen
    }

    /// The release configuration gives a merchant (or a partner's acquirer-scoped calls), without any override:
    /// merchant pin, roll-out, group pin, partner default, else the newest available today. Listings use it too.
    public static func configuredRelease(
        merchant: MerchantRecord?, partner: PartnerRecord, environment: KlarnaEnvironment, policy: ReleasePolicy,
        rollouts: [Rollout], today: String
    ) -> (String, ReleaseSource)? {
        if let merchant {
            if let pin = merchant.release { return (pin, .merchant) }
            let chosen = rollouts.filter { $0.includes(merchant) }.compactMap { rollout in policy.ordinal(of: rollout.release).map { ($0, rollout.release) } }
            if let newest = chosen.max(by: { $0.0 < $1.0 }) { return (newest.1, .rollout) }
            if let pin = merchant.groups.lazy.compactMap({ policy.groups[$0] }).first { return (pin, .group) }
        }
        if let pin = partner.defaultRelease { return (pin, .partner) }
        return policy.latest(in: environment, on: today).map { ($0.id, .latest) }
    }
}
