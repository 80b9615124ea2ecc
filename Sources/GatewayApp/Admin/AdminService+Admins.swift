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

    /// Adds an admin account with a new token, returned once to be shown once; only its hash is stored.
    public func addAdmin(name: String, role: AdminRole) async throws -> (account: AdminAccount, token: Secret) {
        // Names follow the id rules, worded for a name ("an admin name has 1 to 64 characters").
        if let problem = MerchantRecord.problem(withID: name, as: "an admin name") { throw AdminError(problem) }
        let accounts = try adminAccountStore
        if try await accounts.adminAccounts().contains(where: { $0.name == name }) {
            throw AdminError("admin '\(name)' already exists; remove it first to issue a new token")
        }
        let token = AdminToken.generate()
        let account = AdminAccount(
            name: name, role: role, tokenID: token.id, tokenHash: token.secretHash,
            createdMicros: UTCTime.nowMicros())
        try await changing("admins.add", "\(name) role \(role.rawValue)") { try await accounts.insertAdminAccount(account) }
        return (account, AdminToken.rendered(token))
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
            presented.matches(storedHash: account.tokenHash)
        else { return nil }
        return account
    }
}
