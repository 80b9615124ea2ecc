import Foundation
import GatewayCore

/// Loads `policies/` files and checks them against the catalogue, so a typo in a family name is an error at
/// load time instead of a silent denial at 3 a.m.
///
/// Each loader has a text form (what the fuzz targets and tests feed) and a file form that reads then parses.
public enum PolicyLoader {
    /// Loads and validates `access.yaml`.
    public static func loadAccess(path: String, catalogue: OperationCatalogue) throws -> AccessPolicy {
        try access(yaml: read(path), source: path, catalogue: catalogue)
    }

    /// Parses and validates access grants.
    public static func access(yaml: String, source: String, catalogue: OperationCatalogue) throws -> AccessPolicy {
        try validated(AccessPolicy.self, yaml: yaml, source: source) { $0.problems(knownFamilies: catalogue.families) }
    }

    /// Loads and validates `rate-limits.yaml`; categories must be ones the catalogue uses.
    public static func loadRateLimits(path: String, catalogue: OperationCatalogue) throws -> RateLimitPolicy {
        try rateLimits(yaml: read(path), source: path, catalogue: catalogue)
    }

    /// Parses and validates rate limits.
    public static func rateLimits(yaml: String, source: String, catalogue: OperationCatalogue) throws -> RateLimitPolicy {
        try validated(RateLimitPolicy.self, yaml: yaml, source: source) {
            $0.problems(knownCategories: catalogue.categories)
        }
    }

    /// Loads and validates `releases.yaml` against the catalogue's release names.
    public static func loadReleases(path: String, catalogue: OperationCatalogue) throws -> ReleasePolicy {
        try releases(yaml: read(path), source: path, catalogue: catalogue)
    }

    /// Parses and validates the release calendar.
    public static func releases(yaml: String, source: String, catalogue: OperationCatalogue) throws -> ReleasePolicy {
        try validated(ReleasePolicy.self, yaml: yaml, source: source) {
            $0.problems(knownIntroductions: Set(catalogue.operations.map(\.introducedIn)))
        }
    }

    /// Loads the operation catalogue.
    public static func loadCatalogue(path: String) throws -> OperationCatalogue {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, reason: "cannot read the catalogue (\(error.localizedDescription))")
        }
        do {
            return try OperationCatalogue(tsv: text)
        } catch {
            throw ConfigError(source: path, reason: "\(error)")
        }
    }

    /// Decodes a policy and refuses it with every problem `check` finds, joined, naming `source`.
    private static func validated<Policy: Decodable>(
        _ type: Policy.Type, yaml: String, source: String, check: (Policy) -> [String]
    ) throws -> Policy {
        let policy = try YAMLSettings.decode(type, yaml: yaml, source: source)
        let problems = check(policy)
        guard problems.isEmpty else { throw ConfigError(source: source, reason: problems.joined(separator: "; ")) }
        return policy
    }

    private static func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
    }
}
