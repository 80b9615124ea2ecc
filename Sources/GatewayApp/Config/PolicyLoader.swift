import Foundation
import GatewayCore

/// Loads `policies/` files and checks them against the catalogue, so a typo in a family name is an error at
/// load time instead of a silent denial at 3 a.m.
public enum PolicyLoader {
    /// Loads and validates `access.yaml`.
    public static func loadAccess(path: String, catalogue: OperationCatalogue) throws -> AccessPolicy {
        let policy = try ConfigLoader.load(AccessPolicy.self, path: path)
        let problems = policy.problems(knownFamilies: catalogue.families)
        guard problems.isEmpty else { throw ConfigError(source: path, reason: problems.joined(separator: "; ")) }
        return policy
    }

    /// Loads and validates `rate-limits.yaml`; categories must be ones the catalogue uses.
    public static func loadRateLimits(path: String, catalogue: OperationCatalogue) throws -> RateLimitPolicy {
        let policy = try ConfigLoader.load(RateLimitPolicy.self, path: path)
        let problems = policy.problems(knownCategories: Set(catalogue.operations.map(\.category)))
        guard problems.isEmpty else { throw ConfigError(source: path, reason: problems.joined(separator: "; ")) }
        return policy
    }

    /// Loads and validates `releases.yaml` against the catalogue's release names.
    public static func loadReleases(path: String, catalogue: OperationCatalogue) throws -> ReleasePolicy {
        let policy = try ConfigLoader.load(ReleasePolicy.self, path: path)
        let problems = policy.problems(knownIntroductions: Set(catalogue.operations.map(\.introducedIn)))
        guard problems.isEmpty else { throw ConfigError(source: path, reason: problems.joined(separator: "; ")) }
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
}
