import GatewayCore
import GatewayPolicy

/// The access and rate-limit policies a snapshot is built from: the newest version in the store when it holds one
/// with text, else the config's file (`policies.access`, `policies.rate_limits`; the Klarna defaults without a
/// rate-limit file). A stored version overrides the file until a return to the file is stored
/// (`klarna-gateway policies use-file`), so every instance serves the same policy whatever its disk holds.
struct PolicySources {
    /// The access policy in force.
    let access: AccessPolicy
    /// The rate-limit policy in force.
    let rateLimits: RateLimitPolicy
    /// Where each came from, for the log: `file …` or `store version "…"`.
    let origins: [String: String]

    /// Parses the stored versions in `stored` and reads the files for the kinds without one, all against `catalogue`.
    init(config: GatewayConfig, catalogue: OperationCatalogue, stored: [PolicyVersion]) throws {
        let newest = Dictionary(stored.map { ($0.kind, $0) }, uniquingKeysWith: { first, second in first.id > second.id ? first : second })
        var origins: [String: String] = [:]
        if let version = newest[.access], let yaml = version.yaml {
            access = try PolicyLoader.access(yaml: yaml, source: Self.source(version), catalogue: catalogue)
            origins["access"] = "store version \(version.version ?? "-")"
        } else {
            let path = config.resolve(config.policies.access)
            access = try PolicyLoader.loadAccess(path: path, catalogue: catalogue)
            origins["access"] = "file \(path)"
        }
        if let version = newest[.rateLimits], let yaml = version.yaml {
            rateLimits = try PolicyLoader.rateLimits(yaml: yaml, source: Self.source(version), catalogue: catalogue)
            origins["rate_limits"] = "store version \(version.version ?? "-")"
        } else if let path = config.policies.rateLimits.map(config.resolve) {
            rateLimits = try PolicyLoader.loadRateLimits(path: path, catalogue: catalogue)
            origins["rate_limits"] = "file \(path)"
        } else {
            rateLimits = .klarnaDefaults
            origins["rate_limits"] = "Klarna's defaults"
        }
        self.origins = origins
    }

    /// Names a stored version in a parse error: a catalogue change can make an applied policy invalid.
    private static func source(_ version: PolicyVersion) -> String {
        "the stored \(version.kind.rawValue) policy (version \(version.version ?? "-"), applied by \(version.appliedBy))"
    }
}
