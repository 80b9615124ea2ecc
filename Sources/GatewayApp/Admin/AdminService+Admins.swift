import Foundation
import GatewayCore

extension AdminService {
    /// The store's admin accounts, or an error saying this store cannot hold them.
    var adminAccountStore: any AdminAccountStore {
        get throws {
            guard let accounts = store as? any AdminAccountStore else { throw AdminError("this store cannot hold admin accounts") }
            return accounts
        }
    }

    /// Adds an admin account with a new token, returned once to be shown once; only its hash is stored. With a
    /// client certificate's fingerprint, that certificate alone identifies the account and the token works only
    /// beside it (as a certificate-bound caller's).
    public func addAdmin(name: String, role: AdminRole, certificateFingerprint: String? = nil) async throws -> (account: AdminAccount, token: Secret) {
        let token = AdminToken.generate()
        let account = try await insertAdmin(name: name, role: role, certificateFingerprint: certificateFingerprint, token: token)
        return (account, AdminToken.rendered(token))
    }

    /// Adds an account that its client certificate alone authenticates: no token is issued, so none can leak or be
    /// replayed (`admins add --no-token`, `token: false` in the API).
    public func addCertificateAdmin(name: String, role: AdminRole, certificateFingerprint: String) async throws -> AdminAccount {
        try await insertAdmin(name: name, role: role, certificateFingerprint: certificateFingerprint, token: nil)
    }

    private func insertAdmin(name: String, role: AdminRole, certificateFingerprint: String?, token: CallerToken?) async throws -> AdminAccount {
        // Names follow the id rules, worded for a name ("an admin name has 1 to 64 characters").
        if let problem = MerchantRecord.problem(withID: name, as: "an admin name") { throw AdminError(problem) }
        let fingerprint = try certificateFingerprint.map { try AdminService.normalizedFingerprint($0, option: "--certificate-fingerprint") }
        let accounts = try adminAccountStore
        let existing = try await accounts.adminAccounts()
        if existing.contains(where: { $0.name == name }) {
            throw AdminError("admin '\(name)' already exists; remove it first to issue a new token")
        }
        if let fingerprint, let holder = existing.first(where: { $0.certificateFingerprint == fingerprint }) {
            throw AdminError("admin '\(holder.name)' already holds the certificate \(fingerprint); a certificate names one account")
        }
        // A certificate-only account still fills the token id's unique column, with an id no token carries; its
        // empty hash matches no presented secret (and `authenticateAdmin` checks `hasToken` first).
        let tokenID = token?.id ?? "certificate-only-\(UUID().uuidString.lowercased())"
        let account = AdminAccount(
            name: name, role: role, tokenID: tokenID, tokenHash: token?.secretHash ?? "",
            createdMicros: UTCTime.nowMicros(), certificateFingerprint: fingerprint)
        try await changing("admins.add", "\(name) role \(role.rawValue) certificate \(fingerprint ?? "-") token \(token == nil ? "none" : "issued")") {
            try await accounts.insertAdminAccount(account)
        }
        return account
    }

    /// The account holding the client certificate with this fingerprint; nil when none does.
    public func adminAccount(certificateFingerprint: String) async throws -> AdminAccount? {
        try await adminAccountStore.adminAccount(certificateFingerprint: certificateFingerprint.lowercased())
    }

    /// Every admin account, by name.
    public func listAdmins() async throws -> [AdminAccount] { try await adminAccountStore.adminAccounts() }

    /// Removes an admin account: its token stops working at once.
    public func removeAdmin(name: String) async throws {
        let accounts = try adminAccountStore
        guard try await changing("admins.remove", name, { try await accounts.deleteAdminAccount(name: name) }) else { throw AdminError.notFound("admin", name) }
    }

    /// The account a presented admin token belongs to; nil for an unknown token or a wrong secret (compared in
    /// constant time, as callers' are).
    public func authenticateAdmin(_ presented: CallerToken.Presented) async throws -> AdminAccount? {
        guard let account = try await adminAccountStore.adminAccount(tokenID: AdminToken.tokenID(of: presented)),
            account.hasToken, presented.matches(storedHash: account.tokenHash)
        else { return nil }
        return account
    }
}
