import Foundation
import GatewayApp
import GatewayCore
import Testing

/// `upstream.timeouts`, `retries`, `circuit_breaker`, `idempotency_keys` and the overload limits, as the config
/// loader reads them (with `KGW_…` overrides, as an operator would set them).
@Suite("Resilience configuration")
struct ResilienceConfigTests {
    static let path = ShippedConfigTests.repository.appendingPathComponent("config/gateway.yaml").path
    static let ms: Int64 = 1_000_000

    @Test("the shipped defaults, legacy keys, global timeouts and per-family overrides key by key")
    func timeouts() throws {
        let shipped = try ConfigLoader.loadGateway(path: Self.path, environment: [:]).resiliencePolicy
        #expect(shipped.timeouts == .defaults)
        #expect(shipped.retry == RetryPolicy())
        #expect(shipped.budget == RetryBudget.Settings())
        #expect(shipped.breaker == CircuitBreaker.Settings())
        #expect(shipped.addIdempotencyKeys)

        let config = try ConfigLoader.loadGateway(path: Self.path, environment: [
            "KGW_UPSTREAM__RESPONSE_TIMEOUT_MS": "45000",
            "KGW_UPSTREAM__TIMEOUTS__BODY_IDLE_MS": "7000",
            "KGW_UPSTREAM__TIMEOUTS__FAMILIES": "{settlements: {total_ms: 300000, response_head_ms: 90000}}",
            "KGW_UPSTREAM__RETRIES__MAX_ATTEMPTS": "5", "KGW_UPSTREAM__RETRIES__BUDGET_RATIO": "0.2",
            "KGW_UPSTREAM__CIRCUIT_BREAKER__FAILURE_THRESHOLD": "7", "KGW_UPSTREAM__IDEMPOTENCY_KEYS": "false",
            "KGW_LIMITS__MAX_IN_FLIGHT_REQUESTS": "64",
        ])
        let policy = config.resiliencePolicy
        #expect(policy.timeouts.responseHead == 45_000 * Self.ms, "the legacy key still counts")
        #expect(policy.timeouts.bodyIdle == 7_000 * Self.ms)
        let settlements = policy.timeouts(for: "settlements")
        #expect(settlements.total == 300_000 * Self.ms && settlements.responseHead == 90_000 * Self.ms)
        #expect(settlements.bodyIdle == 7_000 * Self.ms, "unset family keys inherit the global ones")
        #expect(policy.timeouts(for: "payment-transaction") == policy.timeouts)
        #expect(policy.retry.maxAttempts == 5 && policy.budget.ratio == 0.2 && policy.breaker.failureThreshold == 7)
        #expect(!policy.addIdempotencyKeys)
        #expect(config.limits.maxInFlightRequests == 64)
    }

    @Test("non-positive timeouts, attempts and limits are refused with the key named")
    func refusals() throws {
        for (key, value) in [
            ("KGW_UPSTREAM__TIMEOUTS__TOTAL_MS", "0"), ("KGW_UPSTREAM__TIMEOUTS__FAMILIES", "{settlements: {connect_ms: -1}}"),
            ("KGW_UPSTREAM__RETRIES__MAX_ATTEMPTS", "0"), ("KGW_UPSTREAM__CIRCUIT_BREAKER__OPEN_MS", "0"),
            ("KGW_LIMITS__MAX_IN_FLIGHT_REQUESTS", "0"), ("KGW_UPSTREAM__RETRIES__BACKOFF_CAP_MS", "1"),
        ] {
            #expect(throws: ConfigError.self, "\(key)=\(value)") { try ConfigLoader.loadGateway(path: Self.path, environment: [key: value]) }
        }
    }
}
