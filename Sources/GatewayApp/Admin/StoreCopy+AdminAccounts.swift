import GatewayCore

extension StoreCopy {
    /// Copies every admin account (token hashes as they are: the tokens keep working) and reads them back;
    /// returns how many. A destination that cannot hold them is refused only when there are some.
    static func copyAdminAccounts(from source: any GatewayStore, to destination: any GatewayStore) async throws -> Int {
        let accounts = try await (source as? any AdminAccountStore)?.adminAccounts() ?? []
        guard !accounts.isEmpty else { return 0 }
        guard let target = destination as? any AdminAccountStore else {
            throw AdminError("the destination store cannot hold admin accounts, and the source has some")
        }
        for account in accounts { try await target.insertAdminAccount(account) }
        let copied = try await target.adminAccounts()
        guard Set(copied) == Set(accounts) else {
            throw AdminError("the copy does not match its source: admin accounts: \(accounts.count) in the source, \(copied.count) in the destination")
        }
        return accounts.count
    }

    /// Whether the destination already holds admin accounts (then it is not empty).
    static func holdsAdminAccounts(_ store: any GatewayStore) async throws -> Bool {
        try await !((store as? any AdminAccountStore)?.adminAccounts().isEmpty ?? true)
    }
}
