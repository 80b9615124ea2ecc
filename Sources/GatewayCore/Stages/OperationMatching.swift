/// Stage 2: which Klarna operation is this, from the catalogue.
public struct OperationMatching: Sendable {
    /// Makes the stage.
    public init() {}

    /// Matches the validated target.
    public func match(method: String, target: RequestTarget, in snapshot: GatewaySnapshot) throws(GatewayError) -> OperationMatcher.Match {
        switch snapshot.catalogue.matcher.match(method: method, path: target.path) {
        case .success(let match):
            return match
        case .failure(let miss):
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
