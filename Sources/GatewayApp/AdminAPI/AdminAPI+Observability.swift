import GatewayCore

extension AdminAPI {
    /// Checks the admin token of a request for `/metrics`, or for `/readyz`'s details, on an admin listener off
    /// loopback: nil when it carries a valid token of any role, else the refusal to send (401, audited, and
    /// counted by the back-off as the API's own refusals are).
    func observabilityRefusal(_ request: AdminRequest) async -> AdminResponse? {
        let requestID = RequestID.make()
        let address = request.clientAddress ?? "unknown"
        let wait = backoff.delay(for: address)
        if wait > .zero { try? await Task.sleep(for: wait) }
        do {
            if try await authenticate(request) != nil {
                backoff.succeeded(address)
                return nil
            }
        } catch {
            logger.error("admin token check for \(request.path) failed", metadata: ["request_id": "\(requestID)", "error": "\(error)"])
        }
        backoff.failed(address)
        return await refuse(
            GatewayError(
                .unauthenticated, "off loopback, \(request.path) needs Authorization: Bearer with an admin token of any role",
                headers: [.init("WWW-Authenticate", "Bearer")]),
            request, requestID: requestID, account: nil, route: nil)
    }
}
