import Foundation
import GatewayApp
import GatewayAudit
import GatewayCore
import GatewayProxy
import GatewayTestSupport
import KlarnaSimulator
import NIOPosix

/// A real gateway in front of a real Klarna simulator, on loopback with throwaway PKIs, a real SQLite store and
/// the real config loader. Every secret it plants is distinctive, so tests can search outputs for them.
final class GatewayHarness: Sendable {
    static let acquirerKey = "klarna_test_api_PLANTEDacquirerKEY7f3a9c"
    static let merchantOwnKey = "klarna_test_api_PLANTEDmerchantKEY4b8e21"
    static let accounts = (1...4).map { "krn:partner:global:account:test:M\($0)" }

    let directory: URL
    /// `/healthz` and `/readyz`.
    let adminServer: AdminServer
    /// The audit trail the gateway journals to (in `directory` unless a test placed it elsewhere).
    let audit: AuditWriter
    let auditPath: String
    let simulator: KlarnaSimulatorServer
    let klarnaCA: SimulatorPKI
    let acquirer: SimulatorPKI.Identity
    let callerCA: TestPKI
    let service: GatewayService
    let admin: AdminService
    let logs: LogCapture
    let control: TestHTTPClient
    let tokens: [String: String]
    let callerCertificates: [String: TestPKI.Identity]
    private let runner: Task<Void, Never>

    var httpsPort: Int { service.ports["https"] ?? 0 }
    var plainPort: Int { service.ports["loopback"] ?? 0 }
    var configPath: String { directory.appendingPathComponent("gateway.yaml").path }

    /// Grants used unless a test gives its own `access.yaml`.
    static let defaultAccess = """
        callers:
          checkout:
            merchants: [m1, "group:eu"]
            partners: [acq]
            families: [payment-request, payment-transaction, webhooks]
          orders:
            merchants: ["partner:acq"]
            families: [payment-transaction]
          bound:
            merchants: ["*"]
            families: ["*"]
          robot:
            merchants: [m1]
            families: [payment-transaction]
          tester:
            merchants: ["*"]
            families: ["*"]
            permissions: [release-override]
        """

    static func start(
        access: String = defaultAccess, rateLimits: String? = nil, releases: String? = nil,
        simulatorRateLimits: SimulatorConfiguration.RateLimits = .unlimited, partnerBaseURL: String? = nil,
        auditPath: String? = nil, limits: String? = nil, tracing: String? = nil, metrics: GatewayMetrics = .disabled,
        environment: [String: String]? = nil, responseTimeoutMs: Int = 5000
    ) async throws -> GatewayHarness {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

        let klarna = try KlarnaSidePKI()
        let klarnaCA = klarna.ca
        let acquirer = klarna.acquirer
        var simulatorConfiguration = klarna.configuration(
            acquirerKey: acquirerKey,
            merchants: accounts.enumerated().map { index, krn in
                .init(krn: krn, acquirer: "ACQ1", apiKeys: index == 1 ? [merchantOwnKey] : nil)
            },
            rateLimits: simulatorRateLimits, recordedHeaders: ["traceparent", "Klarna-Gateway-Merchant", "X-Custom", "Klarna-Gateway-Release"]
        )
        simulatorConfiguration.catalogueFile = repository.appendingPathComponent("config/catalogue/operations.tsv").path
        let simulator = try await KlarnaSimulatorServer.start(configuration: simulatorConfiguration, group: MultiThreadedEventLoopGroup.singleton)

        // The acquirer's side: callers' CA, the gateway's server certificate, two callers' client certificates.
        let callerCA = try TestPKI(name: "internal callers CA")
        let gatewayServer = try callerCA.issueServer()
        let certificates = ["bound": try callerCA.issueClient(commonName: "bound-caller"), "robot": try callerCA.issueClient(commonName: "robot")]
        func write(_ name: String, _ text: String) throws {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try write("callers-ca.pem", callerCA.caCertificatePEM)
        try write("klarna-ca.pem", klarnaCA.certificatePEM)
        _ = try callerCA.write(gatewayServer, to: directory, name: "gateway")
        try write("access.yaml", access)
        if let rateLimits { try write("rate-limits.yaml", rateLimits) }
        if let releases { try write("releases.yaml", releases) }
        let config = """
            node_id: test-node
            storage: gateway.sqlite
            master_key: {file: master.key}
            catalogue: \(repository.appendingPathComponent("config/catalogue/operations.tsv").path)
            policies:
              access: access.yaml
              \(rateLimits == nil ? "" : "rate_limits: rate-limits.yaml")
              \(releases == nil ? "" : "releases: releases.yaml")
            listeners:
              - name: https
                address: 127.0.0.1
                port: 0
                tls: {certificate: gateway.pem, private_key: gateway.key, client_ca: callers-ca.pem, client_certificates: optional}
              - {name: loopback, address: 127.0.0.1, port: 0}
            upstream:
              ca_file: klarna-ca.pem
              egress: [{host: "localhost:\(simulator.port)", environment: test}]
              integrator: {name: harness, module_name: klarna-gateway, module_version: "0.0.0"}
              response_timeout_ms: \(responseTimeoutMs)
            reload_interval_ms: 100
            audit: {path: "\(auditPath ?? "audit.sqlite")", checkpoint_every_records: 50}
            \(limits.map { "limits: {\($0)}" } ?? "")
            \(tracing.map { "tracing: {\($0)}" } ?? "")
            """
        try write("gateway.yaml", config)
        let gatewayConfig = try ConfigLoader.loadGateway(path: directory.appendingPathComponent("gateway.yaml").path, environment: [:])

        try AdminService.initializeKeyRing(config: gatewayConfig)
        let admin = try await AdminService.open(config: gatewayConfig, environment: [:])
        try write("api-key", acquirerKey)
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: Secret(acquirerKey), certificatePEM: acquirer.certificatePEM,
            clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: partnerBaseURL ?? "https://localhost:\(simulator.port)", authForm: .rawKey))
        try await admin.addMerchant(id: "m1", partnerID: "acq", account: accounts[0])
        try await admin.addMerchant(id: "m2", partnerID: "acq", account: accounts[1], groups: ["eu"], apiKey: Secret(merchantOwnKey))
        try await admin.addMerchant(id: "m3", partnerID: "acq", account: accounts[2])
        try await admin.addMerchant(id: "m4", partnerID: "acq", account: accounts[3], groups: ["eu"])
        // A live partner and merchant, for the checks that must refuse before anything is sent.
        let liveKey = "klarna_live_api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        _ = try await admin.addPartner(NewPartner(
            id: "acq_live", environment: .live, apiKey: Secret(liveKey), certificatePEM: acquirer.certificatePEM,
            clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:\(simulator.port)", authForm: .rawKey))
        try await admin.addMerchant(id: "m_live", partnerID: "acq_live", account: "krn:partner:global:account:live:L1")
        var tokens: [String: String] = [:]
        for caller in ["checkout", "orders", "tester"] {
            tokens[caller] = try await admin.addCaller(id: caller).token?.rendered.exposedValue
        }
        tokens["bound"] = try await admin.addCaller(id: "bound", certificateFingerprint: certificates["bound"]!.fingerprint).token?.rendered.exposedValue
        _ = try await admin.addCaller(id: "robot", certificateFingerprint: certificates["robot"]!.fingerprint, issueToken: false)

        let logs = LogCapture()
        let signer = try await AuditSigningKey.loadOrCreate(store: admin.store, sealer: admin.sealer)
        let audit = AuditWriter(settings: gatewayConfig.audit, nodeID: gatewayConfig.nodeID, signer: signer, resolve: gatewayConfig.resolve, logger: logs.logger())
        let service = try await GatewayService.start(
            config: gatewayConfig, credentials: try await CredentialLoader.open(config: gatewayConfig, environment: [:]),
            journal: JournalChain([audit, AccessLogJournal(logger: logs.logger())]), logger: logs.logger(), threads: 2,
            // An environment of the test's own goes in as `serve`'s process environment would (the config's source).
            configSource: environment.map { .init(path: directory.appendingPathComponent("gateway.yaml").path, environment: $0) },
            metrics: metrics)
        let runner = Task { _ = try? await service.run() }
        let adminServer = try await AdminServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton) {
            AdminServer.readiness(audit: audit, service: service)
        }
        return GatewayHarness(
            directory: directory, adminServer: adminServer, audit: audit, auditPath: gatewayConfig.resolve(gatewayConfig.audit.path), simulator: simulator, klarnaCA: klarnaCA, acquirer: acquirer, callerCA: callerCA,
            service: service, admin: admin, logs: logs, control: TestHTTPClient(port: simulator.controlPort, tls: nil),
            tokens: tokens, callerCertificates: certificates, runner: runner)
    }

    private init(
        directory: URL, adminServer: AdminServer, audit: AuditWriter, auditPath: String, simulator: KlarnaSimulatorServer, klarnaCA: SimulatorPKI, acquirer: SimulatorPKI.Identity, callerCA: TestPKI,
        service: GatewayService, admin: AdminService, logs: LogCapture, control: TestHTTPClient, tokens: [String: String],
        callerCertificates: [String: TestPKI.Identity], runner: Task<Void, Never>
    ) {
        self.directory = directory
        self.adminServer = adminServer
        self.audit = audit
        self.auditPath = auditPath
        self.simulator = simulator
        self.klarnaCA = klarnaCA
        self.acquirer = acquirer
        self.callerCA = callerCA
        self.service = service
        self.admin = admin
        self.logs = logs
        self.control = control
        self.tokens = tokens
        self.callerCertificates = callerCertificates
        self.runner = runner
    }

    /// A file of the repository, as text.
    static func repositoryFile(_ path: String) throws -> String {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: repository.appendingPathComponent(path), encoding: .utf8)
    }

    /// A client of the gateway's TLS listener, presenting a caller's client certificate if named.
    func client(certificate: String? = nil) -> TestHTTPClient {
        let identity = certificate.flatMap { callerCertificates[$0] }
        return TestHTTPClient(
            port: httpsPort,
            tls: TestTLS(trustRootsPEM: callerCA.caCertificatePEM, clientCertificatePEM: identity?.certificatePEM, clientKeyPEM: identity?.privateKeyPEM))
    }

    /// `Authorization: Bearer` for a caller.
    func bearer(_ caller: String) -> (String, String) { ("Authorization", "Bearer \(tokens[caller] ?? "none")") }

    /// What the simulator received, oldest first.
    func received() async throws -> [JSONValue] {
        let response = try await control.send("GET", "/control/requests")
        return try JSONValue.parse(response.body)["requests"]?.arrayValue ?? []
    }

    /// Forgets what the simulator received so far.
    func clearReceived() async throws { _ = try await control.send("DELETE", "/control/requests") }

    /// Every secret this harness planted (keys, the acquirer's private key body, caller tokens' secret halves).
    var plantedSecrets: [String] {
        return [Self.acquirerKey, Self.merchantOwnKey, secretPart(ofPrivateKeyPEM: acquirer.privateKeyPEM)] + tokens.values.map { String($0.suffix(43)) }
    }

    /// Waits until the gateway serves a snapshot built from the store as it is now.
    func waitForReload() async throws {
        let target = try await admin.store.generation()
        let deadline = ContinuousClock.now + .seconds(120)
        while service.snapshotGeneration < target {
            guard ContinuousClock.now < deadline else { throw ReloadTimeout(target: target, serving: service.snapshotGeneration) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    struct ReloadTimeout: Error, CustomStringConvertible {
        let target: Int64
        let serving: Int64
        var description: String { "the gateway still serves store generation \(serving), waiting for \(target)" }
    }

    func stop() async {
        runner.cancel()
        _ = await runner.value
        await adminServer.stop()
        await audit.shutdown()
        try? await control.close()
        try? await simulator.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs `body` against a fresh harness and always stops it.
func withGateway(
    access: String = GatewayHarness.defaultAccess, rateLimits: String? = nil, releases: String? = nil,
    simulatorRateLimits: SimulatorConfiguration.RateLimits = .unlimited, partnerBaseURL: String? = nil, auditPath: String? = nil,
    limits: String? = nil, tracing: String? = nil, metrics: GatewayMetrics = .disabled, environment: [String: String]? = nil,
    responseTimeoutMs: Int = 5000, _ body: (GatewayHarness) async throws -> Void
) async throws {
    let harness = try await GatewayHarness.start(
        access: access, rateLimits: rateLimits, releases: releases, simulatorRateLimits: simulatorRateLimits, partnerBaseURL: partnerBaseURL,
        auditPath: auditPath, limits: limits, tracing: tracing, metrics: metrics, environment: environment,
        responseTimeoutMs: responseTimeoutMs)
    do {
        try await body(harness)
    } catch {
        await harness.stop()
        throw error
    }
    await harness.stop()
}

extension TestHTTPResponse {
    /// The body as JSON (`.null` when it is not JSON).
    var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
    /// The gateway error code of a refusal.
    var errorCode: String? { json["error_code"]?.stringValue }
}
