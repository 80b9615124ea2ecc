import Foundation
import GatewayCore

extension AdminService {
    /// Adds a caller with a new token (returned once, to be shown once) and/or a client-certificate fingerprint.
    public func addCaller(
        id: String, certificateFingerprint: String? = nil, issueToken: Bool = true
    ) async throws -> (record: CallerRecord, token: CallerToken?) {
        if let problem = AdminService.idProblem(id, kind: "caller") { throw AdminError(problem) }
        let fingerprint = try certificateFingerprint.map { try AdminService.normalizedFingerprint($0) }
        guard issueToken || fingerprint != nil else {
            throw AdminError("a caller without a token needs --cert-fingerprint")
        }
        if try await store.caller(id: id) != nil { throw AdminError("caller '\(id)' already exists; use `callers rotate-token`") }
        let token = issueToken ? CallerToken.generate() : nil
        let record = CallerRecord(
            id: id, tokenID: token?.id, tokenHash: token?.secretHash, certificateFingerprint: fingerprint)
        // The token's id, never its secret half: the id is what `callers list` shows.
        try await changing("callers.add", "\(id) token \(token?.id ?? "-") certificate \(fingerprint ?? "-")") { try await store.saveCaller(record) }
        return (record, token)
    }

    /// Every caller, by id.
    public func listCallers() async throws -> [CallerRecord] { try await store.callers() }

    /// Revokes a caller: its token and certificate stop working at the gateways' next reload.
    @discardableResult
    public func revokeCaller(id: String) async throws -> CallerRecord {
        guard var record = try await store.caller(id: id) else { throw AdminError.notFound("caller", id) }
        record.status = .revoked
        try await changing("callers.revoke", id) { try await store.saveCaller(record) }
        return record
    }

    /// Replaces a caller's token; the old one stops working at the next reload. A revoked caller stays revoked.
    public func rotateCallerToken(id: String) async throws -> CallerToken {
        guard var record = try await store.caller(id: id) else { throw AdminError.notFound("caller", id) }
        let token = CallerToken.generate()
        record.tokenID = token.id
        record.tokenHash = token.secretHash
        try await changing("callers.rotate-token", "\(id) token \(token.id)") { try await store.saveCaller(record) }
        return token
    }

    /// A SHA-256 fingerprint as 64 lowercase hex digits; colons, as some tools print them, are dropped.
    static func normalizedFingerprint(_ text: String, option: String = "--cert-fingerprint") throws -> String {
        let hex = text.replacingOccurrences(of: ":", with: "").lowercased()
        guard hex.utf8.count == 64, Hex.decode(hex) != nil else {
            throw AdminError("\(option) must be a SHA-256 fingerprint: 64 hex digits")
        }
        return hex
    }
}
