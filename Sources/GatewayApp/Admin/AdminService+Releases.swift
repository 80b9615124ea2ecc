import Foundation
import GatewayCore

/// One release as `releases list` shows it.
public struct ReleaseSummary: Sendable {
    /// The release.
    public let release: Release
    /// Merchants whose effective release it is today.
    public let merchants: Int
    /// Roll-outs of it in force.
    public let rollouts: [Rollout]
}

extension AdminService {
    /// Today's date (UTC) as the release calendar writes it.
    public static func today(_ now: Date = Date()) -> String {
        UTCTime.day(epochSeconds: Int(now.timeIntervalSince1970))
    }

    /// Each release with its availability and how many merchants are on it today.
    public func releaseSummaries(policy: ReleasePolicy, today: String = AdminService.today()) async throws -> [ReleaseSummary] {
        let contents = try await store.contents()
        let partners = Dictionary(contents.partners.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var counts: [String: Int] = [:]
        for merchant in contents.merchants {
            guard let partner = partners[merchant.partnerID],
                let (release, _) = ReleaseSelection.configuredRelease(
                    merchant: merchant, partner: partner, environment: partner.environment, policy: policy,
                    rollouts: contents.rollouts, today: today)
            else { continue }
            counts[release, default: 0] += 1
        }
        return policy.releases.map { release in
            ReleaseSummary(release: release, merchants: counts[release.id] ?? 0, rollouts: contents.rollouts.filter { $0.release == release.id })
        }
    }

    /// Moves a stable, hash-chosen share of merchants (of a group) onto a release. Raising the share only adds
    /// merchants and lowering it only removes them. Returns how many merchants the roll-out covers now. `actor`
    /// names who made it in the change log (the admin API's `admin:NAME`; the operating-system user by default).
    @discardableResult
    public func rollOut(release: String, percent: Double, group: String?, policy: ReleasePolicy, actor: String? = nil) async throws -> Int {
        guard policy.release(release) != nil else {
            throw AdminError("unknown release '\(release)' (known: \(policy.releases.map(\.id).joined(separator: ", ")))")
        }
        guard (0...100).contains(percent) else { throw AdminError("--percent must be between 0 and 100") }
        let rollout = Rollout(release: release, percent: percent, group: group)
        try await changing("releases.rollout", "\(release) at \(percent)%\(group.map { " of group \($0)" } ?? "")", actor: actor) {
            try await store.saveRollout(rollout)
        }
        return try await store.merchants().filter { rollout.includes($0) }.count
    }

    /// Ends every roll-out of a release: its merchants return to their previous release.
    @discardableResult
    public func rollBack(release: String, actor: String? = nil) async throws -> Int {
        let removed = try await changing("releases.rollback", release, actor: actor) { try await store.deleteRollouts(release: release) }
        guard removed > 0 else { throw AdminError("no roll-out of '\(release)' is in force") }
        return removed
    }

    /// Why a merchant of `environment` cannot be pinned to `release`, thrown; nothing when it can.
    public static func checkPin(_ release: String, environment: KlarnaEnvironment, policy: ReleasePolicy, today: String = AdminService.today()) throws {
        guard let known = policy.release(release) else {
            throw AdminError("unknown release '\(release)' (known: \(policy.releases.map(\.id).joined(separator: ", ")))")
        }
        guard known.isAvailable(in: environment, on: today) else {
            let when = known.availableFrom(environment).map { "until \($0)" } ?? "(no date scheduled)"
            throw AdminError("release \(release) is not available in \(environment.rawValue) \(when); a merchant cannot be pinned to it")
        }
    }

    /// Pins a merchant to a release (nil removes the pin). A pin to a release not yet available in the
    /// merchant's environment is refused: the gateway would refuse every call.
    @discardableResult
    public func pinMerchant(id: String, release: String?, policy: ReleasePolicy, today: String = AdminService.today()) async throws -> MerchantRecord {
        var record = try await showMerchant(id: id)
        if let release { try AdminService.checkPin(release, environment: record.account.environment, policy: policy, today: today) }
        record.release = release
        try await changing("merchants.release", "\(id) pinned to \(release ?? "none")") { try await store.saveMerchants([record], secrets: []) }
        return record
    }
}
