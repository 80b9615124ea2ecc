import Foundation
import GatewayCore

extension AdminAPI.Exchange {
    /// `GET /admin/v1/releases/rollouts`: the roll-outs in the store, with the `ETag` of the whole set that a change
    /// to it must send as `If-Match`.
    func listRollouts() async throws -> AdminResponse {
        let rollouts = try await api.service.store.rollouts()
        return AdminResponse(.ok, json: Self.rollouts(rollouts), requestID: requestID, etag: Self.etag(rollouts))
    }

    /// `POST /admin/v1/releases/rollouts` `{"release","percent"[,"group"]}` under `If-Match`: as `releases rollout`
    /// (it replaces a roll-out of the same release and group). The answer has the set as it is now and how many
    /// merchants the roll-out covers.
    func applyRollout() async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: ["release", "percent", "group"], shape: #"{"release": "r8", "percent": 10, "group": "eu"}"#)
        let release = try body.requiredString("release")
        let group = try body.string("group", nullable: true)
        if let group, let problem = MerchantRecord.problem(withID: group, as: "a group name") {
            throw GatewayError(.badRequest, "group: " + problem)
        }
        let percent: Double
        switch body.value("percent") {
        case .int(let value)?: percent = Double(value)
        case .double(let value)?: percent = value
        default: throw GatewayError(.badRequest, "percent is a number from 0 to 100")
        }
        guard (0...100).contains(percent) else { throw GatewayError(.badRequest, "percent is a number from 0 to 100") }
        try await matchingRollouts()
        let policy = api.releases()
        guard policy.release(release) != nil else { throw GatewayError(.notFound, "no release '\(release)' in the calendar in force") }
        try await api.recordIntent(self, merchant: nil)
        let covered = try await serviceRule {
            try await api.service.rollOut(release: release, percent: percent, group: group, policy: policy, actor: "admin:" + account.name)
        }
        await api.recordOutcome(self, merchant: nil, status: 200)
        let now = try await api.service.store.rollouts()
        return AdminResponse(
            .ok, json: Self.rollouts(now, extra: [("merchants", .int(covered))]), requestID: requestID, etag: Self.etag(now))
    }

    /// `DELETE /admin/v1/releases/rollouts/{release}` under `If-Match`: as `releases rollback`, every roll-out of the
    /// release ends and its merchants return to their previous release.
    func rollBack(_ release: String) async throws -> AdminResponse {
        let current = try await matchingRollouts()
        guard current.contains(where: { $0.release == release }) else { throw GatewayError(.notFound, "no roll-out of '\(release)' is in force") }
        try await api.recordIntent(self, merchant: nil)
        let removed = try await serviceRule { try await api.service.rollBack(release: release, actor: "admin:" + account.name) }
        await api.recordOutcome(self, merchant: nil, status: 200)
        let now = try await api.service.store.rollouts()
        return AdminResponse(.ok, json: Self.rollouts(now, extra: [("removed", .int(removed))]), requestID: requestID, etag: Self.etag(now))
    }

    /// `GET /admin/v1/releases/history?limit=`: the release change log (`releases history`), newest first.
    func releaseHistory() async throws -> AdminResponse {
        let limit = try pageLimit()
        let events = try await api.service.store.adminEvents().filter(\.isReleaseChange).suffix(limit).reversed()
        return AdminResponse(
            .ok,
            json: .object([("events", .array(events.map { event in
                .object([
                    ("time", .string(UTCTime.timestamp(micros: event.timeMicros))),
                    ("actor", .string(event.actor)), ("action", .string(event.action)), ("detail", .string(event.detail)),
                ])
            }))]),
            requestID: requestID)
    }

    /// The roll-outs in the store if `If-Match` names the set's current `ETag`: missing 428, malformed 400, stale 412.
    /// The check comes before the write, not in it (the store has no conditional roll-out write): two changes in
    /// the same moment can both pass it, which the history shows.
    @discardableResult
    private func matchingRollouts() async throws -> [Rollout] {
        let current = try await api.service.store.rollouts()
        _ = try ifMatch(Self.etag(current), of: "roll-outs", readAt: "/admin/v1/releases/rollouts")
        return current
    }

    /// The set's entity tag: a hash of every roll-out, in a fixed order.
    static func etag(_ rollouts: [Rollout]) -> String {
        let lines = rollouts.map { "\($0.release)\u{1F}\($0.percent)\u{1F}\($0.group ?? "")" }.sorted()
        return EntityTag.hashing("rollouts\u{1E}" + lines.joined(separator: "\u{1E}"))
    }

    private static func rollouts(_ rollouts: [Rollout], extra: [(String, JSONValue)] = []) -> JSONValue {
        .object([("rollouts", .array(rollouts.map { rollout in
            .object([("release", .string(rollout.release)), ("percent", .double(rollout.percent)), ("group", rollout.group.map(JSONValue.string) ?? .null)])
        }))] + extra)
    }
}
