/// One Klarna release: when it reaches each environment and which API major it serves.
public struct Release: Sendable, Hashable, Codable {
    /// Id (`stable-v1`, `r3` … `r9`).
    public var id: String
    /// Human name (`Release 7`).
    public var name: String
    /// First day it is available in test (`YYYY-MM-DD`, UTC); nil when not scheduled.
    public var test: String?
    /// First day it is available in live; nil when not scheduled.
    public var live: String?
    /// The API major it serves (`v2`).
    public var apiMajor: String

    enum CodingKeys: String, CodingKey { case id, name, test, live, apiMajor = "api_major" }

    /// Makes a release.
    public init(id: String, name: String, test: String?, live: String?, apiMajor: String) {
        self.id = id
        self.name = name
        self.test = test
        self.live = live
        self.apiMajor = apiMajor
    }

    /// The first day it is available in `environment`.
    public func availableFrom(_ environment: KlarnaEnvironment) -> String? {
        environment == .test ? test : live
    }

    /// True when available in `environment` on `day` (`YYYY-MM-DD`).
    public func isAvailable(in environment: KlarnaEnvironment, on day: String) -> Bool {
        guard let from = availableFrom(environment) else { return false }
        return from <= day
    }
}

/// `policies/releases.yaml`: the release calendar, group pins and per-release upstreams.
public struct ReleasePolicy: Sendable, Hashable, Codable {
    /// Releases, oldest first (the order defines "newer").
    public var releases: [Release]
    /// Release pins by merchant group.
    public var groups: [String: String]
    /// Base URLs by release id and environment, for candidate pools or another API major's prefix.
    public var upstreams: [String: [String: String]]

    /// Makes a policy.
    public init(releases: [Release], groups: [String: String] = [:], upstreams: [String: [String: String]] = [:]) {
        self.releases = releases
        self.groups = groups
        self.upstreams = upstreams
    }

    /// Decodes with `groups` and `upstreams` optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        releases = try c.decode([Release].self, forKey: .releases)
        groups = try c.decodeIfPresent([String: String].self, forKey: .groups) ?? [:]
        upstreams = try c.decodeIfPresent([String: [String: String]].self, forKey: .upstreams) ?? [:]
    }

    /// The calendar of the release notes the product was specified from.
    public static let klarnaCalendar = ReleasePolicy(releases: [
        Release(id: "stable-v1", name: "stable/v1", test: "2024-04-01", live: "2024-04-15", apiMajor: "v1"),
        Release(id: "r3", name: "Release 3", test: "2024-07-04", live: "2024-08-01", apiMajor: "v2"),
        Release(id: "r4", name: "Release 4", test: "2024-09-02", live: "2024-10-01", apiMajor: "v2"),
        Release(id: "r5", name: "Release 5", test: "2024-11-12", live: "2024-12-16", apiMajor: "v2"),
        Release(id: "r6", name: "Release 6", test: "2025-02-19", live: "2025-04-01", apiMajor: "v2"),
        Release(id: "r7", name: "Release 7", test: "2025-05-05", live: "2025-05-19", apiMajor: "v2"),
        Release(id: "r8", name: "Release 8", test: "2025-06-09", live: "2025-06-30", apiMajor: "v2"),
        Release(id: "r9", name: "Release 9", test: "2025-08-11", live: "2025-09-01", apiMajor: "v2"),
    ])

    /// The position of a release (higher is newer), nil for an unknown id.
    public func ordinal(of id: String) -> Int? { releases.firstIndex { $0.id == id } }

    /// The release with this id.
    public func release(_ id: String) -> Release? { releases.first { $0.id == id } }

    /// The newest release available in `environment` on `day`.
    public func latest(in environment: KlarnaEnvironment, on day: String) -> Release? {
        releases.last { $0.isAvailable(in: environment, on: day) }
    }

    /// Problems a human should fix: duplicate or unknown ids, dates out of order, bad upstreams.
    public func problems(knownIntroductions: Set<String>) -> [String] {
        var problems: [String] = []
        var seen = Set<String>()
        for release in releases where !seen.insert(release.id).inserted { problems.append("release '\(release.id)' appears twice") }
        for release in releases {
            for day in [release.test, release.live].compactMap({ $0 }) where !Self.isDay(day) {
                problems.append("release '\(release.id)': '\(day)' is not a YYYY-MM-DD date")
            }
            if let test = release.test, let live = release.live, live < test {
                problems.append("release '\(release.id)' reaches live before test")
            }
        }
        for id in knownIntroductions where ordinal(of: id) == nil {
            problems.append("the catalogue names release '\(id)', which the calendar lacks")
        }
        for (group, id) in groups where ordinal(of: id) == nil { problems.append("groups.\(group): unknown release '\(id)'") }
        for (id, byEnvironment) in upstreams {
            if ordinal(of: id) == nil { problems.append("upstreams: unknown release '\(id)'") }
            for (environment, url) in byEnvironment {
                if KlarnaEnvironment(rawValue: environment) == nil { problems.append("upstreams.\(id): '\(environment)' is not test or live") }
                if UpstreamEndpoint(baseURL: url) == nil { problems.append("upstreams.\(id).\(environment): '\(url)' is not an https URL") }
            }
        }
        return problems
    }

    static func isDay(_ text: String) -> Bool {
        let parts = text.split(separator: "-")
        return parts.count == 3 && parts[0].count == 4 && parts[1].count == 2 && parts[2].count == 2
            && parts.allSatisfy { $0.allSatisfy(\.isNumber) }
    }
}

/// A staged roll-out: a stable, hash-chosen share of merchants (optionally of one group) moved onto a release.
public struct Rollout: Sendable, Hashable, Codable {
    /// The release rolled out.
    public var release: String
    /// Share of merchants, 0 to 100 (hundredths allowed).
    public var percent: Double
    /// Only merchants of this group, or all.
    public var group: String?

    /// Makes a roll-out.
    public init(release: String, percent: Double, group: String?) {
        self.release = release
        self.percent = percent
        self.group = group
    }

    /// True when the merchant is in the roll-out. The hash of (release, merchant) is fixed, so raising the share
    /// only adds merchants and lowering it only removes them.
    public func includes(_ merchant: MerchantRecord) -> Bool {
        if let group, !merchant.groups.contains(group) { return false }
        return Double(Rollout.bucket(release: release, merchantID: merchant.id)) < percent * 100
    }

    /// A bucket in 0..<10000 from FNV-1a of `release/merchant`: stable across processes and versions.
    public static func bucket(release: String, merchantID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(release)/\(merchantID)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int(hash % 10_000)
    }
}
