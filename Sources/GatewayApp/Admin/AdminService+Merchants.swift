import Foundation
import GatewayCore

extension AdminService {
    /// Adds a merchant; refuses an existing id, an unknown partner, a KRN of another environment or already used.
    @discardableResult
    public func addMerchant(
        id: String, partnerID: String, account: String, groups: [String] = [], apiKey: Secret? = nil
    ) async throws -> MerchantRecord {
        guard let partner = try await store.partner(id: partnerID) else {
            throw AdminError("no partner with id '\(partnerID)'; add it first with `partners add`")
        }
        let krn = try AdminService.checkMerchant(id: id, partner: partner, account: account, groups: groups)
        if try await store.merchant(id: id) != nil { throw AdminError("merchant '\(id)' already exists") }
        if let holder = try await store.merchant(account: krn) {
            throw AdminError("account \(account) already belongs to merchant '\(holder.id)'")
        }
        var record = MerchantRecord(id: id, partnerID: partnerID, account: krn, groups: groups)
        var secrets: [SealedSecret] = []
        if let apiKey {
            try AdminService.checkAPIKey(apiKey, environment: partner.environment, owner: "merchant '\(id)'")
            let credential = SecretOwner.merchantAPIKey(id, version: 1)
            secrets.append(try sealer.seal(apiKey, owner: SecretOwner.merchant(id), credential: credential))
            record.apiKey = credential
        }
        let detail = "\(id) partner \(partnerID) account \(krn) groups \(groups.isEmpty ? "-" : groups.joined(separator: ";"))"
            + (record.apiKey.map { " own key \($0)" } ?? "")
        try await changing("merchants.add", detail) { try await store.saveMerchants([record], secrets: secrets) }
        return record
    }

    /// Every merchant, by id.
    public func listMerchants() async throws -> [MerchantRecord] { try await store.merchants() }

    /// One merchant.
    public func showMerchant(id: String) async throws -> MerchantRecord {
        guard let record = try await store.merchant(id: id) else { throw AdminError.notFound("merchant", id) }
        return record
    }

    /// Suspends or resumes a merchant; returns the record as saved.
    @discardableResult
    public func setMerchantStatus(id: String, _ status: MerchantStatus) async throws -> MerchantRecord {
        var record = try await showMerchant(id: id)
        record.status = status
        try await changing(status == .suspended ? "merchants.suspend" : "merchants.resume", id) { try await store.saveMerchants([record], secrets: []) }
        return record
    }

    /// Removes a merchant and its sealed secrets.
    public func removeMerchant(id: String) async throws {
        guard try await changing("merchants.remove", id, { try await store.deleteMerchant(id: id) }) else { throw AdminError.notFound("merchant", id) }
    }

    /// The merchant's parsed account, or why it cannot be saved as given: id rules, KRN shape, environment,
    /// group names.
    static func checkMerchant(id: String, partner: PartnerRecord, account: String, groups: [String]) throws -> AccountKRN {
        if let problem = MerchantRecord.problem(withID: id) { throw AdminError("merchant id '\(id)': \(problem)") }
        guard let krn = AccountKRN(account) else {
            throw AdminError("'\(account)' is not a partner account KRN (krn:partner:global:account:test|live:ID)")
        }
        if krn.environment != partner.environment {
            throw AdminError(
                "account \(account) is a \(krn.environment) account but partner '\(partner.id)' is \(partner.environment)")
        }
        for group in groups {
            if let problem = MerchantRecord.problem(withID: group) {
                throw AdminError("group '\(group)': " + problem.replacingOccurrences(of: "a merchant id", with: "a group name"))
            }
        }
        return krn
    }
}
