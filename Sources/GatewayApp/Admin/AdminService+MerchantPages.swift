import Foundation
import GatewayCore

extension AdminService {
    /// The store's paged merchant reads, or an error saying this store has none.
    var merchantPaging: any MerchantPaging {
        get throws {
            guard let paging = store as? any MerchantPaging else { throw AdminError("this store cannot page merchants") }
            return paging
        }
    }

    /// Up to `limit` merchants after the id `after`, whose id or account contains `matching`.
    public func merchantPage(after: String?, matching: String?, limit: Int) async throws -> [MerchantRecord] {
        try await merchantPaging.merchantPage(after: after, matching: matching, limit: limit)
    }

    /// Why a conditional change was refused.
    public enum ConditionalChangeError: Error, Sendable {
        /// The merchant's entity tag is no longer the one given (changed by someone else meanwhile).
        case stale(current: MerchantRecord)
        /// The partner is no longer as it was read (changed by someone else meanwhile).
        case stalePartner(current: PartnerRecord)
    }

    /// Applies `change` to the merchant only while its entity tag is still `etag`; the store compares every column
    /// in the same statement that writes, so a change made in between by any process is never overwritten.
    public func changeMerchant(
        id: String, ifMatch etag: String, _ change: (inout MerchantRecord) throws -> Void
    ) async throws -> MerchantRecord {
        let current = try await showMerchant(id: id)
        guard current.etag == etag else { throw ConditionalChangeError.stale(current: current) }
        var next = current
        try change(&next)
        let paging = try merchantPaging
        guard try await changing("merchants.update", "\(id)", { try await paging.replaceMerchant(current, with: next) }) else {
            throw ConditionalChangeError.stale(current: try await showMerchant(id: id))
        }
        return next
    }
}
