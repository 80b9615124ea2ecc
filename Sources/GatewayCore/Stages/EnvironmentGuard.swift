/// Stage 4: test with test, live with live. The partner's environment, the merchant's KRN, the key's prefix and
/// the upstream host must agree, or nothing leaves; and nothing goes to a host the configuration does not name.
public struct EnvironmentGuard: Sendable {
    /// Makes the stage.
    public init() {}

    /// Checks the call's target and the upstream it will go to; returns the environment all parts agree on.
    public func check(_ target: CallTarget, endpoint: UpstreamEndpoint, settings: PipelineSettings) throws(GatewayError) -> KlarnaEnvironment {
        let partner = target.partner
        let environment = partner.record.environment
        guard let hostEnvironment = settings.environment(ofAuthority: endpoint.authority, host: endpoint.host) else {
            throw GatewayError(.upstreamUnavailable, "The upstream configured for partner \(partner.record.id) is not an allowed egress host.")
        }
        var parts: [(String, KlarnaEnvironment?)] = [("upstream host", hostEnvironment)]
        switch target {
        case .merchant(let merchant, _):
            parts.append(("merchant account", merchant.record.account.environment))
            parts.append(("partner API key", partner.keyEnvironment))
        case .direct(let merchant, _):
            parts.append(("merchant account", merchant.record.account.environment))
            parts.append(("merchant API key", merchant.ownKeyEnvironment))
        case .partner:
            parts.append(("partner API key", partner.keyEnvironment))
        }
        for (name, value) in parts where value != environment {
            throw GatewayError(
                .environmentMismatch,
                "The \(name) is not in the \(environment.rawValue) environment of partner \(partner.record.id); nothing was sent.")
        }
        return environment
    }
}
