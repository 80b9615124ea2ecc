import GatewayCore

extension AdminAPI.Exchange {
    /// Runs an `AdminService` operation; its refusals (an `AdminError`: a rule the input breaks) become 400s with
    /// its message, which never holds a secret. The rules stay in `AdminService`, shared with the CLI.
    func serviceRule<T>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error as AdminError {
            throw GatewayError(.badRequest, error.message)
        }
    }

    /// The same for a check that does not wait.
    func serviceRule<T>(_ operation: () throws -> T) throws -> T {
        do {
            return try operation()
        } catch let error as AdminError {
            throw GatewayError(.badRequest, error.message)
        }
    }
}
