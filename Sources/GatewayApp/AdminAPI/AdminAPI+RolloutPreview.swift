import Foundation
import GatewayCore

extension AdminAPI.Exchange {
    /// `GET /admin/v1/releases/rollout-preview?environment=E&release=R[&percent=P][&group=G]`: the merchants of E
    /// whose release would change if R were rolled out to P % (100 by default: R the default for every merchant
    /// without a pin) of G or of all, as `releases rollout` would store it, from the snapshot in force. Nothing is
    /// changed and nothing recorded.
    func previewRollout() throws -> AdminResponse {
        let query = request.query
        guard let environment = query["environment"].flatMap(KlarnaEnvironment.init(rawValue:)) else {
            throw GatewayError(.badRequest, "environment is test or live")
        }
        let snapshot = api.runtime.snapshots.current
        let policy = snapshot.releases
        let known = policy.releases.map(\.id).joined(separator: ", ")
        guard let release = query["release"], !release.isEmpty, release.count <= 64 else { throw GatewayError(.badRequest, "release is one of \(known)") }
        // A well-formed name the calendar lacks is a resource that does not exist, as an unknown merchant id is.
        guard let chosen = policy.release(release) else { throw GatewayError(.notFound, "no release '\(release)' in the calendar in force (\(known))") }
        var percent = 100.0
        if let text = query["percent"] {
            guard let value = Double(text), (0...100).contains(value) else { throw GatewayError(.badRequest, "percent is a number from 0 to 100") }
            percent = value
        }
        let group = query["group"].flatMap { $0.isEmpty ? nil : $0 }
        if let group, group.count > 64 { throw GatewayError(.badRequest, "group has at most 64 characters") }
        let after = query["after"]
        if let after, after.count > 64 { throw GatewayError(.badRequest, "after is a merchant id: at most 64 characters") }
        let limit = try pageLimit()
        let today = AdminService.today()
        let preview = RolloutPreview(
            snapshot: snapshot, environment: environment, rollout: Rollout(release: release, percent: percent, group: group), today: today)
        // One more than asked tells whether another page follows.
        let page = Array(preview.moving.lazy.filter { id in after.map { $0.utf8.lexicographicallyPrecedes(id.utf8) } ?? true }.prefix(limit + 1))
        let shown = Array(page.prefix(limit))
        return AdminResponse(
            .ok,
            json: .object([
                ("environment", .string(environment.rawValue)),
                ("release", .string(release)),
                ("percent", .double(percent)),
                ("group", group.map(JSONValue.string) ?? .null),
                ("today", .string(today)),
                ("available", .bool(chosen.isAvailable(in: environment, on: today))),
                ("snapshot", .int(Int(snapshot.version))),
                ("merchants", .int(preview.merchants)),
                ("moving", .int(preview.moving.count)),
                ("changes", .array(preview.changes.map { change in
                    .object([("from", change.from.map(JSONValue.string) ?? .null), ("to", change.to.map(JSONValue.string) ?? .null), ("merchants", .int(change.count))])
                })),
                ("merchant_ids", .array(shown.map(JSONValue.string))),
                ("next_cursor", page.count > limit ? shown.last.map(JSONValue.string) ?? .null : .null),
            ]),
            requestID: requestID)
    }
}
