import Foundation
@testable import GatewayApp
import GatewayCore
import Testing

/// `tracing` as the config loader and `klarna-gateway check` read it.
@Suite("Tracing configuration")
struct TracingConfigTests {
    static let path = ResilienceConfigTests.path

    @Test("off by default; overrides reach the sampling policy; a change waits for a restart")
    func settings() throws {
        let shipped = try ConfigLoader.loadGateway(path: Self.path, environment: [:])
        #expect(shipped.tracing == GatewayConfig.Tracing())
        #expect(!shipped.tracing.enabled)
        let config = try ConfigLoader.loadGateway(path: Self.path, environment: [
            "KGW_TRACING__ENABLED": "true", "KGW_TRACING__ENDPOINT": "https://collector:4318/v1/traces",
            "KGW_TRACING__SAMPLING__RATIO": "0.25", "KGW_TRACING__SAMPLING__PARENT_BASED": "false", "KGW_TRACING__PROTOCOL": "http/json",
        ])
        #expect(config.tracing.enabled && config.tracing.endpoint == "https://collector:4318/v1/traces" && config.tracing.protocol == "http/json")
        #expect(config.tracing.sampling.policy == TraceSampling(ratio: 0.25, parentBased: false, errors: true))
        #expect(RestartOnlySettings.changed(from: shipped, to: config).contains("tracing"))
        #expect(RestartOnlySettings.keeping(restartOnly: shipped, rest: config).tracing == shipped.tracing)
    }

    @Test("impossible settings are refused by serve and reported by check, the key named")
    func refusals() throws {
        for (environment, key) in [
            (["KGW_TRACING__SAMPLING__RATIO": "1.5"], "tracing.sampling.ratio"),
            (["KGW_TRACING__ENDPOINT": "grpc://collector:4317"], "tracing.endpoint"),
            (["KGW_TRACING__PROTOCOL": "grpc"], "tracing.protocol"),
            (["KGW_TRACING__QUEUE_SIZE": "0"], "tracing.queue_size"),
            (["KGW_TRACING__BATCH_SIZE": "4096"], "tracing.batch_size"),
        ] {
            expectRefused(path: Self.path, environment: environment, naming: key)
        }
    }
}

/// `serve` (the config loader) refuses the config at `path` with `environment`'s overrides, and `check` reports it,
/// both naming `key`.
func expectRefused(path: String, environment: [String: String], naming key: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try ConfigLoader.loadGateway(path: path, environment: environment)
        Issue.record("\(environment) was accepted", sourceLocation: sourceLocation)
    } catch {
        #expect("\(error)".contains(key), "\(error)", sourceLocation: sourceLocation)
    }
    let report = ConfigCheck.run(path: path, environment: environment)
    #expect(report.problems.contains { $0.contains(key) }, "check: \(report.problems)", sourceLocation: sourceLocation)
}
