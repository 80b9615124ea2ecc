import Foundation
import GatewayCore
import GatewayTestSupport
import NIOPosix
@testable import KlarnaSimulator

/// A running simulator on free ports with a fresh PKI, and clients for the API (mTLS) and the control port.
final class SimulatorHarness: Sendable {
    static let acquirerKRN = "krn:partner:global:account:test:ACQ1"
    static let otherAcquirerKRN = "krn:partner:global:account:test:ACQ2"
    static let merchant = "krn:partner:global:account:test:M1"
    static let merchant2 = "krn:partner:global:account:test:M2"
    static let otherMerchant = "krn:partner:global:account:test:X1"
    static let acquirerKey = "klarna_test_api_acquirer_one_key"
    static let otherAcquirerKey = "klarna_test_api_acquirer_two_key"
    static let merchantKey = "klarna_test_api_merchant_one_own_key"

    let server: KlarnaSimulatorServer
    let ca: SimulatorPKI
    let client: SimulatorPKI.Identity
    let api: TestHTTPClient
    let control: TestHTTPClient

    var tls: TestTLS { TestTLS(trustRootsPEM: ca.certificatePEM, clientCertificatePEM: client.certificatePEM, clientKeyPEM: client.privateKeyPEM) }

    init(
        rateLimits: SimulatorConfiguration.RateLimits = .unlimited, faults: [FaultRule] = [], seed: UInt64 = 7,
        webhookRetryScale: Double = 0.001, requireClientCertificate: Bool = true, recordedHeaders: [String]? = nil,
        webhookCAFile: String? = nil
    ) async throws {
        let (ca, caKey) = try SimulatorPKI.makeCA(name: "simulator test CA")
        let serverIdentity = try ca.issueServer()
        client = try ca.issueClient(commonName: "ACQ1 gateway")
        self.ca = ca
        var configuration = SimulatorConfiguration(
            tls: .init(certificatePEM: serverIdentity.certificatePEM, keyPEM: serverIdentity.privateKeyPEM, clientCAPEM: ca.certificatePEM,
                caKeyPEM: caKey, requireClientCertificate: requireClientCertificate),
            acquirers: [
                .init(id: "ACQ1", krn: Self.acquirerKRN, apiKeys: [Self.acquirerKey]),
                .init(id: "ACQ2", krn: Self.otherAcquirerKRN, apiKeys: [Self.otherAcquirerKey]),
            ],
            merchants: [
                .init(krn: Self.merchant, acquirer: "ACQ1", apiKeys: [Self.merchantKey]),
                .init(krn: Self.merchant2, acquirer: "ACQ1"),
                .init(krn: Self.otherMerchant, acquirer: "ACQ2"),
            ],
            rateLimits: rateLimits, webhookRetryScale: webhookRetryScale, faults: faults, seed: seed, recordedHeaders: recordedHeaders
        )
        configuration.catalogueFile = SimulatorConfiguration.sourceTreeCatalogue
        configuration.webhookCAFile = webhookCAFile
        server = try await KlarnaSimulatorServer.start(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton)
        api = TestHTTPClient(port: server.port, tls: TestTLS(trustRootsPEM: ca.certificatePEM, clientCertificatePEM: client.certificatePEM, clientKeyPEM: client.privateKeyPEM))
        control = TestHTTPClient(port: server.controlPort, tls: nil)
    }

    /// An API call with the acquirer's raw-key Basic header unless told otherwise, on `client` or else on `api`.
    func call(
        _ method: String, _ path: String, json: JSONValue? = nil, key: String? = SimulatorHarness.acquirerKey, headers: [(String, String)] = [],
        on client: TestHTTPClient? = nil
    ) async throws -> TestHTTPResponse {
        var all = headers
        if let key { all.append(("Authorization", "Basic \(key)")) }
        if json != nil { all.append(("Content-Type", "application/json")) }
        return try await (client ?? api).send(method, path, headers: all, body: json?.bytes)
    }

    /// `count` API calls sent at once, each on a connection of its own (`api` takes one exchange at a time): a limit
    /// per second is reached this way however slowly a loaded machine runs calls sent one after another.
    func callsAtOnce(_ count: Int, _ method: String, json: JSONValue? = nil, path: @escaping @Sendable (Int) -> String) async throws -> [TestHTTPResponse] {
        try await withThrowingTaskGroup(of: TestHTTPResponse.self) { group in
            for index in 0..<count {
                group.addTask {
                    let client = TestHTTPClient(port: self.server.port, tls: self.tls)
                    do {
                        let response = try await self.call(method, path(index), json: json, on: client)
                        try await client.close()
                        return response
                    } catch {
                        try? await client.close()
                        throw error
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    func controlCall(_ method: String, _ path: String, json: JSONValue? = nil) async throws -> TestHTTPResponse {
        try await control.send(method, path, headers: json == nil ? [] : [("Content-Type", "application/json")], body: json?.bytes)
    }

    func stop() async throws {
        try await api.close()
        try await control.close()
        try await server.shutdown()
    }
}

extension TestHTTPResponse {
    /// The body parsed as JSON (`.null` when it is not).
    var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
}

/// Runs `body` against a fresh simulator and always shuts it down.
func withSimulator(
    rateLimits: SimulatorConfiguration.RateLimits = .unlimited, faults: [FaultRule] = [], seed: UInt64 = 7,
    webhookRetryScale: Double = 0.001, requireClientCertificate: Bool = true, recordedHeaders: [String]? = nil,
    webhookCAFile: String? = nil, _ body: (SimulatorHarness) async throws -> Void
) async throws {
    let harness = try await SimulatorHarness(
        rateLimits: rateLimits, faults: faults, seed: seed, webhookRetryScale: webhookRetryScale,
        requireClientCertificate: requireClientCertificate, recordedHeaders: recordedHeaders, webhookCAFile: webhookCAFile
    )
    do {
        try await body(harness)
    } catch {
        try? await harness.stop()
        throw error
    }
    try await harness.stop()
}

let m1 = "/v2/accounts/\(SimulatorHarness.merchant)"
