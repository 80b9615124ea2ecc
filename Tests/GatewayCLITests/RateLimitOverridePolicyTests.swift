import Foundation
import GatewayApp
import GatewayCore
import Testing

/// Issue 16: `partner_overrides` and `caller_overrides` in `policies/rate-limits.yaml` are parsed and validated like
/// the rest of the file; a malformed one is refused with a message naming the file and the key.
@Suite("Rate-limit overrides in rate-limits.yaml")
struct RateLimitOverridePolicyTests {
    static let catalogue = PolicyTextTests.catalogue

    static func load(_ yaml: String) throws -> RateLimitPolicy {
        try PolicyLoader.rateLimits(yaml: yaml, source: "rate-limits.yaml", catalogue: catalogue)
    }

    /// The refusal's message, or nil when the text loaded.
    static func refusal(_ yaml: String) -> String? {
        do {
            _ = try load(yaml)
            return nil
        } catch let error as ConfigError {
            #expect(error.source == "rate-limits.yaml")
            return "\(error)"
        } catch {
            return "not a ConfigError: \(error)"
        }
    }

    @Test("overrides by partner id (with categories) and by caller id load")
    func parsed() throws {
        let policy = try Self.load("""
            partner:
              test: {default: {rate: 500}}
            partner_overrides:
              acq_big:
                default: {rate: 5000, burst: 6000}
                categories:
                  payment-request-management: {rate: 50}
            caller: {rate: 2000}
            caller_overrides:
              settlement-batch: {rate: 20, burst: 5}
            """)
        #expect(policy.partnerLimits(partnerID: "acq_big", environment: .test)?.default == LimitSpec(rate: 5000, burst: 6000))
        #expect(policy.partnerLimits(partnerID: "acq_big", environment: .test)?.limit(for: "payment-request-management") == LimitSpec(rate: 50))
        #expect(policy.partnerLimits(partnerID: "acq", environment: .test)?.default == LimitSpec(rate: 500))
        #expect(policy.callerLimit(callerID: "settlement-batch") == LimitSpec(rate: 20, burst: 5))
        #expect(policy.callerLimit(callerID: "checkout") == LimitSpec(rate: 2000))
        // The shipped file loads with its (empty) override sections.
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("policies/rate-limits.yaml").path
        _ = try PolicyLoader.loadRateLimits(path: shipped, catalogue: Self.catalogue)
    }

    @Test("malformed overrides are refused, naming the key", arguments: [
        ("partner_overrides:\n  acq: {default: {rate: 0}}\n", "partner_overrides.acq.default: rate must be positive"),
        ("partner_overrides:\n  acq: {categories: {no-such-category: {rate: 1}}}\n", "partner_overrides.acq: unknown category 'no-such-category'"),
        ("caller_overrides:\n  batch: {rate: 5, burst: 0}\n", "caller_overrides.batch: burst must be at least 1"),
        ("caller_overrides:\n  batch: {rate: lots}\n", "caller_overrides.batch.rate"),
        ("caller_overrides:\n  batch: 5\n", "caller_overrides.batch"),
        ("caller_overrides:\n  \"bad id\": {rate: 5}\n", "caller_overrides: 'bad id': a caller id uses only"),
        ("partner_overrides:\n  \"krn:x\": {default: {rate: 5}}\n", "partner_overrides: 'krn:x': a partner id may not start with 'krn:'"),
    ])
    func refused(_ yaml: String, _ message: String) {
        let refusal = Self.refusal(yaml)
        #expect(refusal?.contains(message) == true, "\(refusal ?? "loaded")")
    }
}
