import Foundation
import GatewayCore

extension AdminAPI.Exchange {
    /// `GET /admin/v1/admins` (security): every admin account's name, role and creation time; never a token, its
    /// id or its hash.
    func listAdmins() async throws -> AdminResponse {
        let accounts = try await api.service.listAdmins()
        return AdminResponse(.ok, json: .object([("admins", .array(accounts.map(Self.admin)))]), requestID: requestID)
    }

    /// `POST /admin/v1/admins` `{"name","role"}` (security): as `admins add`, a new account whose token is in this
    /// answer once (the store keeps its hash), or none with `token: false` and a certificate. A name that exists: 409.
    func addAdmin() async throws -> AdminResponse {
        let body = try AdminRequestBody(
            request.body, allowed: ["name", "role", "certificate_fingerprint", "token"],
            shape: #"{"name": "NAME", "role": "viewer|operator|security", "certificate_fingerprint": "HEX", "token": true}"#)
        let name = try body.requiredString("name")
        if let problem = MerchantRecord.problem(withID: name, as: "an admin name") { throw GatewayError(.badRequest, problem) }
        guard let role = AdminRole(rawValue: try body.requiredString("role")) else {
            throw GatewayError(.badRequest, "role is viewer, operator or security")
        }
        let fingerprint = try body.string("certificate_fingerprint", maxLength: 95, nullable: true)
        if let fingerprint, !Self.isFingerprint(fingerprint) {
            throw GatewayError(.badRequest, "certificate_fingerprint is a SHA-256 fingerprint: 64 hex digits, optionally in colon-separated pairs")
        }
        let issueToken = try body.bool("token") ?? true
        if !issueToken, fingerprint == nil {
            throw GatewayError(.badRequest, "an admin without a token (token: false) needs certificate_fingerprint: its certificate is then the account")
        }
        let existing = try await api.service.listAdmins()
        if existing.contains(where: { $0.name == name }) {
            throw GatewayError(.conflict, "admin '\(name)' already exists; remove it first to issue a new token")
        }
        let normalized = fingerprint.map { $0.replacingOccurrences(of: ":", with: "").lowercased() }
        if let normalized, existing.contains(where: { $0.certificateFingerprint == normalized }) {
            throw GatewayError(.conflict, "another admin already holds that certificate; a certificate names one account")
        }
        try await api.recordIntent(self, merchant: nil)
        let added: (account: AdminAccount, token: Secret?) = try await serviceRule {
            // Without a token the fingerprint is there: refused above otherwise.
            if !issueToken, let fingerprint {
                return (try await api.service.addCertificateAdmin(name: name, role: role, certificateFingerprint: fingerprint), nil)
            }
            let added = try await api.service.addAdmin(name: name, role: role, certificateFingerprint: fingerprint)
            return (added.account, added.token)
        }
        await api.recordOutcome(self, merchant: nil, status: 201, inSnapshot: false)
        var answer: [(String, JSONValue)] = [("admin", Self.admin(added.account))]
        if let token = added.token { answer.append(("token", .string(token.exposedValue))) }
        return AdminResponse(.created, json: .object(answer), requestID: requestID)
    }

    /// `DELETE /admin/v1/admins/{name}` (security): as `admins remove`, its token stops at once. No `If-Match`:
    /// removing only takes rights away. An account cannot remove itself (409), so the API cannot lock out the last
    /// security admin by accident; the CLI can.
    func removeAdmin(_ name: String) async throws -> AdminResponse {
        guard let found = try await api.service.listAdmins().first(where: { $0.name == name }) else {
            throw GatewayError(.notFound, "no admin with name '\(name)'")
        }
        guard name != account.name else { throw GatewayError(.conflict, "an admin account cannot remove itself; use another security account or the CLI") }
        try await api.recordIntent(self, merchant: nil)
        do {
            try await api.service.removeAdmin(name: name)
        } catch is AdminError {
            throw GatewayError(.notFound, "no admin with name '\(name)'")
        }
        await api.recordOutcome(self, merchant: nil, status: 200, inSnapshot: false)
        return AdminResponse(.ok, json: Self.admin(found), requestID: requestID)
    }

    /// An admin account as answered: name, role, when it was made, its client certificate's fingerprint (public).
    private static func admin(_ account: AdminAccount) -> JSONValue {
        .object([
            ("name", .string(account.name)), ("role", .string(account.role.rawValue)),
            ("created", .string(UTCTime.timestamp(micros: account.createdMicros, digits: 3))),
            ("certificate_fingerprint", account.certificateFingerprint.map(JSONValue.string) ?? .null),
            ("has_token", .bool(account.hasToken)),
        ])
    }
}
