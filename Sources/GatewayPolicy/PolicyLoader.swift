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
        let policy = try YAMLSettings.decode(AccessPolicy.self, yaml: yaml, source: source)
        let problems = policy.problems(knownFamilies: catalogue.families)
        guard problems.isEmpty else { throw ConfigError(source: source, reason: problems.joined(separator: "; ")) }
        return policy
    }

    /// Loads and validates `rate-limits.yaml`; categories must be ones the catalogue uses.
    public static func loadRateLimits(path: String, catalogue: OperationCatalogue) throws -> RateLimitPolicy {
        try rateLimits(yaml: read(path), source: path, catalogue: catalogue)
    }

    /// Parses and validates rate limits.
    public static func rateLimits(yaml: String, source: String, catalogue: OperationCatalogue) throws -> RateLimitPolicy {
        let policy = try YAMLSettings.decode(RateLimitPolicy.self, yaml: yaml, source: source)
        let problems = policy.problems(knownCategories: Set(catalogue.operations.map(\.category)))
        guard problems.isEmpty else { throw ConfigError(source: source, reason: problems.joined(separator: "; ")) }
        return policy
    }

    /// Loads and validates `releases.yaml` against the catalogue's release names.
    public static func loadReleases(path: String, catalogue: OperationCatalogue) throws -> ReleasePolicy {
        try releases(yaml: read(path), source: path, catalogue: catalogue)
    }

    /// Parses and validates the release calendar.
    public static func releases(yaml: String, source: String, catalogue: OperationCatalogue) throws -> ReleasePolicy {
        let policy = try YAMLSettings.decode(ReleasePolicy.self, yaml: yaml, source: source)
        let problems = policy.problems(knownIntroductions: Set(catalogue.operations.map(\.introducedIn)))
        guard problems.isEmpty else { throw ConfigError(source: source, reason: problems.joined(separator: "; ")) }
        return policy
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

    private static func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
    }
}
