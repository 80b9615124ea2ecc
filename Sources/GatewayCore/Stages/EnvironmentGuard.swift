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
        // Checked one by one rather than from a list of parts: this runs on every call.
        func require(_ value: KlarnaEnvironment?, _ name: String) throws(GatewayError) {
            guard value != environment else { return }
            throw GatewayError(
                .environmentMismatch,
                "The \(name) is not in the \(environment.rawValue) environment of partner \(partner.record.id); nothing was sent.")
        }
        try require(hostEnvironment, "upstream host")
        switch target {
        case .merchant(let merchant, _):
            try require(merchant.record.account.environment, "merchant account")
            try require(partner.keyEnvironment, "partner API key")
        case .direct(let merchant, _):
            try require(merchant.record.account.environment, "merchant account")
            try require(merchant.ownKeyEnvironment, "merchant API key")
        case .partner:
            try require(partner.keyEnvironment, "partner API key")
        }
        return environment
    }
}
