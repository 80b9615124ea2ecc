import Foundation
import GatewayApp
import GatewayCore
import Testing

/// The configuration and policy files in the repository load and validate, so a typo there fails CI instead of
/// a deployment.
@Suite("Shipped configuration")
struct ShippedConfigTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("config/gateway.yaml and config/demo.yaml load, with their policies", arguments: ["config/gateway.yaml", "config/demo.yaml"])
    func loads(_ file: String) throws {
        let config = try ConfigLoader.loadGateway(path: Self.repository.appendingPathComponent(file).path, environment: [:])
        let catalogue = try PolicyLoader.loadCatalogue(path: config.resolve(config.catalogue))
        #expect(catalogue.operations.count == 128)
        let access = try PolicyLoader.loadAccess(path: config.resolve(config.policies.access), catalogue: catalogue)
        #expect(!access.callers.isEmpty)
        _ = try PolicyLoader.loadRateLimits(path: config.resolve(try #require(config.policies.rateLimits)), catalogue: catalogue)
        _ = try PolicyLoader.loadReleases(path: config.resolve(try #require(config.policies.releases)), catalogue: catalogue)
        #expect(config.auditEnabled)
        #expect(config.admin?.address == "127.0.0.1")
    }

    @Test("environment overrides reach nested keys and list items")
    func overrides() throws {
        let config = try ConfigLoader.loadGateway(
            path: Self.repository.appendingPathComponent("config/demo.yaml").path,
            environment: ["KGW_LISTENERS__0__PORT": "9999", "KGW_AUDIT__MODE": "fsync", "KGW_LOG_LEVEL": "debug", "KGW_UPSTREAM__CONNECT_TIMEOUT_MS": "1234"])
        #expect(config.listeners[0].port == 9999)
        #expect(config.audit.mode.rawValue == "fsync")
        #expect(config.logLevel == "debug")
        #expect(config.upstream.connectTimeoutMs == 1234)
    }

    @Test("plain HTTP off loopback and a bad log level are refused with the file named")
    func refusals() throws {
        let path = Self.repository.appendingPathComponent("config/demo.yaml").path
        #expect(throws: ConfigError.self) { try ConfigLoader.loadGateway(path: path, environment: ["KGW_LISTENERS__1__ADDRESS": "0.0.0.0"]) }
        #expect(throws: ConfigError.self) { try ConfigLoader.loadGateway(path: path, environment: ["KGW_LOG_LEVEL": "loud"]) }
        #expect(throws: ConfigError.self) { try ConfigLoader.loadGateway(path: path, environment: ["KGW_ADMIN__ADDRESS": "10.0.0.1"]) }
    }
}
