import GatewayCore

/// Which merchants of an environment a roll-out would move, decided as the request path decides a merchant's
/// release (`ReleaseSelection.configuredRelease`) with the roll-outs in force before and with the roll-out.
struct RolloutPreview {
    /// One move: from one release to another (nil: none available), and how many merchants make it.
    struct Change: Equatable {
        let from: String?
        let to: String?
        let count: Int
    }

    /// Merchants of the environment.
    let merchants: Int
    /// Ids of the merchants whose release would change, in byte order.
    let moving: [String]
    /// The moves, most merchants first.
    let changes: [Change]

    /// Walks the snapshot's merchants once. The roll-out replaces one of the same release and group, as
    /// `releases rollout` replaces it in the store.
    init(snapshot: GatewaySnapshot, environment: KlarnaEnvironment, rollout: Rollout, today: String) {
        let before = snapshot.rollouts
        let replaced = before.first { $0.release == rollout.release && $0.group == rollout.group }
        let after = before.filter { $0.release != rollout.release || $0.group != rollout.group } + [rollout]
        var merchants = 0
        var moving: [String] = []
        var counts: [[String?]: Int] = [:]
        for merchant in snapshot.merchants.records where merchant.account.environment == environment {
            merchants += 1
            // The two sets of roll-outs differ in one entry: a merchant neither the replaced roll-out nor the new one
            // includes gets the same release from both, and a pinned merchant is never moved by a roll-out. Both
            // skip the two resolutions, which leaves them to the share that may move.
            guard merchant.release == nil, rollout.includes(merchant) || replaced?.includes(merchant) == true,
                let partner = snapshot.partners[merchant.partnerID]?.record
            else { continue }
            func release(_ rollouts: [Rollout]) -> String? {
                ReleaseSelection.configuredRelease(
                    merchant: merchant, partner: partner, environment: environment, policy: snapshot.releases, rollouts: rollouts, today: today)?.0
            }
            let from = release(before)
            let to = release(after)
            guard from != to else { continue }
            moving.append(merchant.id)
            counts[[from, to], default: 0] += 1
        }
        self.merchants = merchants
        self.moving = moving.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        changes = counts.map { Change(from: $0.key[0], to: $0.key[1], count: $0.value) }
            .sorted { ($1.count, $1.from ?? "", $1.to ?? "") < ($0.count, $0.from ?? "", $0.to ?? "") }
    }
}
