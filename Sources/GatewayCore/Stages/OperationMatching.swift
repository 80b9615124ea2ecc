/// Stage 2: which Klarna operation is this, from the catalogue.
public struct OperationMatching: Sendable {
    /// Makes the stage.
    public init() {}

    /// The family of operations outside the catalogue: granted only by `*`.
    public static let unknownFamily = "unknown"

    /// An operation outside the catalogue, shaped from its path: `/v2/accounts/{id}/…` acts for a merchant,
    /// anything else for the partner. No release introduces it, so release checks do not refuse it.
    static func unknown(method: String, path: Substring) -> OperationMatcher.Match {
        let segments = Array(path.fastSplit(UInt8(ascii: "/")).dropFirst())
        let merchantScoped = segments.count >= 3 && segments[1] == "accounts"
        let template = "/" + segments.enumerated().map { index, segment in
            merchantScoped && index == 2 ? "{partner_account_id}" : String(segment)
        }.joined(separator: "/")
        let operation = Operation(
            id: "unknown", method: method, template: template, scope: merchantScoped ? .merchant : .acquirer,
            family: unknownFamily, category: unknownFamily, introducedIn: unknownFamily, testOnly: false)
        return OperationMatcher.Match(operation: operation, segments: segments)
    }

    /// Matches the validated target.
    public func match(method: String, target: RequestTarget, in snapshot: GatewaySnapshot) throws(GatewayError) -> OperationMatcher.Match {
        switch snapshot.catalogue.matcher.match(method: method, path: target.path) {
        case .success(let match):
            return match
        case .failure(let miss):
            if snapshot.settings.forwardUnknownOperations { return Self.unknown(method: method, path: target.path) }
            switch miss {
            case .noSuchPath:
                throw GatewayError(.unknownOperation, "No Klarna operation in the gateway's catalogue matches \(method) on this path.")
            case .methodNotAllowed(let allowed):
                throw GatewayError(
                    .unknownOperation,
                    "No Klarna operation matches \(method) on this path; it accepts \(allowed.joined(separator: ", ")).")
            }
        }
    }
}
