import Foundation
import GRDB
import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import KlarnaSimulator
import NIOConcurrencyHelpers
import Testing

/// Klarna's webhooks end to end: the Klarna simulator and `klarna-gateway serve` as processes of their own, two
/// internal receivers over real TLS (one asking for the gateway's client certificate), a real SQLite store, and
/// the CLI run as the built binary. Every secret it plants is distinctive, and the signing keys Klarna creates
/// are read back from the simulator's control port, so tests can search every output for them.
///
/// Merchants m1…m4 (accounts M1…M4; m2 and m4 in group `eu`) belong to partner `acq`; the simulator also knows
/// account N9, which the gateway does not: its events are unroutable. Routes: every `payment.*` event to `orders`;
/// completed payment requests of group `eu` also to `ledger`.
final class WebhookHarness: Sendable {
    static let acquirerKey = "klarna_test_api_PLANTEDwebhookKEY8a1f3b"
    /// `orders`'s secret in the Standard Webhooks form (base64 of the key bytes).
    static let ordersSecret = "whsec_" + Base64.encode(Array("PLANTED-orders-destination-secret".utf8))
    static let ledgerSecret = "PLANTEDledgerDESTINATIONsecret9c4e"
    static let accounts = ["M1", "M2", "M3", "M4"]
    static let unknownAccount = "krn:partner:global:account:test:N9"
    static let routes = """
        routes:
          - events: ["payment.*"]
            merchants: ["*"]
            destinations: [orders]
          - events: [payment.request.state-change.completed]
            merchants: ["group:eu"]
            destinations: [ledger]
        """

    let directory: URL
    let configPath: String
    let simulator: ChildProcess
    let simulatorPort: Int
    let control: TestHTTPClient
    let admin: AdminService
    let orders: WebhookReceiver
    let ledger: WebhookReceiver
    let acquirer: SimulatorPKI.Identity
    let klarnaCA: SimulatorPKI
    let internalCA: SimulatorPKI
    let gatewayClient: SimulatorPKI.Identity
    let shopToken: String
    /// Every process the harness ran (the gateway's runs and every CLI run), for the secret search.
    let outputs = NIOLockedValueBox<[String]>([])
    let gateway = NIOLockedValueBox<(process: ChildProcess, loopback: Int, webhooks: Int, admin: Int)?>(nil)
    /// Instances started beside it (`serveAnother`), stopped with the harness if a test has not stopped them.
    let others = NIOLockedValueBox<[ChildProcess]>([])
    /// `KGW_` overrides for every `serve`.
    let environment: [String: String]
    /// The store every instance shares: a SQLite file in the directory, or a `postgres://` URL.
    let storage: String

    /// `storage` is the store every instance shares: a SQLite file in the directory, or a `postgres://` URL.
    static func start(environment: [String: String] = [:], storage: String = "gateway.sqlite") async throws -> WebhookHarness {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-webhooks-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let catalogue = repository.appendingPathComponent("config/catalogue/operations.tsv").path
        func write(_ name: String, _ text: String) throws {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        // Klarna's side and the acquirer's internal side, each with its own CA.
        let (klarnaCA, _) = try SimulatorPKI.makeCA(name: "simulated Klarna CA")
        let klarnaServer = try klarnaCA.issueServer()
        let acquirer = try klarnaCA.issueClient(commonName: "ACQ1 acquirer")
        let (internalCA, _) = try SimulatorPKI.makeCA(name: "acquirer internal CA")
        let webhookServer = try internalCA.issueServer()
        let gatewayClient = try internalCA.issueClient(commonName: "klarna-gateway webhooks")
        try write("klarna-ca.pem", klarnaCA.certificatePEM)
        try write("internal-ca.pem", internalCA.certificatePEM)
        try write("webhook-server.pem", webhookServer.certificatePEM)
        try write("webhook-server.key", webhookServer.privateKeyPEM)
        try write("gateway-client.pem", gatewayClient.certificatePEM)
        try write("gateway-client.key", gatewayClient.privateKeyPEM)

        var simulatorConfiguration = SimulatorConfiguration(
            tls: .init(certificatePEM: klarnaServer.certificatePEM, keyPEM: klarnaServer.privateKeyPEM, clientCAPEM: klarnaCA.certificatePEM),
            acquirers: [.init(id: "ACQ1", krn: "krn:partner:global:account:test:ACQ1", apiKeys: [acquirerKey])],
            merchants: (accounts.map { "krn:partner:global:account:test:\($0)" } + [unknownAccount]).map { .init(krn: $0, acquirer: "ACQ1") },
            rateLimits: .unlimited, webhookRetryScale: 0.001)
        simulatorConfiguration.catalogueFile = catalogue
        simulatorConfiguration.webhookCAFile = directory.appendingPathComponent("internal-ca.pem").path
        let simulated = try await SimulatorProcess.start(simulatorConfiguration, directory: directory)
        let simulator = simulated.child
        let ports = [simulated.port, simulated.controlPort]

        let orders = try await WebhookReceiver(tls: try internalCA.issueServer(), clientCAPEM: internalCA.certificatePEM)
        let ledger = try await WebhookReceiver(tls: try internalCA.issueServer())

        try write("access.yaml", "callers:\n  shop: {merchants: [\"partner:acq\"], families: [payment-request]}\n")
        try write("gateway.yaml", """
            node_id: webhook-node
            storage: "\(storage)"
            master_key: {file: master.key}
            catalogue: \(catalogue)
            policies: {access: access.yaml, webhooks: webhooks.yaml}
            listeners:
              - {name: loopback, address: 127.0.0.1, port: 0}
              - name: webhooks
                address: 127.0.0.1
                port: 0
                klarna_webhooks: true
                tls: {certificate: webhook-server.pem, private_key: webhook-server.key, client_certificates: none}
            upstream:
              ca_file: klarna-ca.pem
              egress: [{host: "localhost:\(ports[0])", environment: test}]
              response_timeout_ms: 10000
            reload_interval_ms: 100
            admin: {address: 127.0.0.1, port: 0}
            audit: {path: audit.sqlite}
            webhooks:
              backoff_base_ms: 40
              backoff_cap_ms: 300
              max_attempts: 10000
              poll_interval_ms: 50
              timeout_ms: 20000
              lease_seconds: 30
              breaker_failures: 3
              breaker_open_ms: 100
              ca_file: internal-ca.pem
            """)
        let config = try ConfigLoader.loadGateway(path: directory.appendingPathComponent("gateway.yaml").path, environment: [:])
        try AdminService.initializeKeyRing(config: config)
        let admin = try await AdminService.open(config: config, environment: [:])
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: Secret(acquirerKey), certificatePEM: acquirer.certificatePEM,
            clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:\(ports[0])", authForm: .rawKey))
        for (index, account) in accounts.enumerated() {
            try await admin.addMerchant(
                id: "m\(index + 1)", partnerID: "acq", account: "krn:partner:global:account:test:\(account)", groups: index % 2 == 1 ? ["eu"] : [])
        }
        let token = try #require(try await admin.addCaller(id: "shop").token?.rendered.exposedValue)
        let harness = WebhookHarness(
            directory: directory, simulator: simulator, simulatorPort: ports[0], control: TestHTTPClient(port: ports[1], tls: nil), admin: admin,
            orders: orders, ledger: ledger, acquirer: acquirer, klarnaCA: klarnaCA, internalCA: internalCA, gatewayClient: gatewayClient, shopToken: token,
            environment: environment, storage: storage)
        // Destinations through the CLI, as an operator adds them; the routes name them, so they come first.
        try write("orders-secret", ordersSecret)
        try write("ledger-secret", ledgerSecret)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        try await harness.cli([
            "webhooks", "destinations", "add", "orders", "--url", "https://localhost:\(orders.port)/hooks/klarna", "--secret-file", path("orders-secret"),
            "--client-cert", path("gateway-client.pem"), "--client-key", path("gateway-client.key"),
        ])
        try await harness.cli([
            "webhooks", "destinations", "add", "ledger", "--url", "https://localhost:\(ledger.port)/in", "--secret-file", path("ledger-secret"),
        ])
        try write("webhooks.yaml", routes)
        try await harness.serve()
        return harness
    }

    private init(
        directory: URL, simulator: ChildProcess, simulatorPort: Int, control: TestHTTPClient, admin: AdminService, orders: WebhookReceiver,
        ledger: WebhookReceiver, acquirer: SimulatorPKI.Identity, klarnaCA: SimulatorPKI, internalCA: SimulatorPKI, gatewayClient: SimulatorPKI.Identity,
        shopToken: String, environment: [String: String], storage: String
    ) {
        self.directory = directory
        self.configPath = directory.appendingPathComponent("gateway.yaml").path
        self.simulator = simulator
        self.simulatorPort = simulatorPort
        self.control = control
        self.admin = admin
        self.orders = orders
        self.ledger = ledger
        self.acquirer = acquirer
        self.klarnaCA = klarnaCA
        self.internalCA = internalCA
        self.gatewayClient = gatewayClient
        self.shopToken = shopToken
        self.environment = environment
        self.storage = storage
    }

    /// Runs the CLI to completion (with the harness's config unless `withConfig` is false: `store copy` names its
    /// stores instead); fails the test on a non-zero exit unless `expectFailure`.
    @discardableResult
    func cli(_ arguments: [String], withConfig: Bool = true, expectFailure: Bool = false) async throws -> String {
        let result = try await ChildProcess.run(
            ChildProcess.productPath("klarna-gateway"), arguments + (withConfig ? ["--config", configPath] : []), directory: directory)
        outputs.withLockedValue { $0.append(result.stdout + result.stderr) }
        if expectFailure {
            #expect(result.status != 0, "\(arguments.joined(separator: " ")) should fail: \(result.stdout)")
        } else {
            #expect(result.status == 0, "\(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
        return result.stdout + result.stderr
    }

    /// Starts `klarna-gateway serve` and waits until it serves; `nodeID` names another instance of the same store,
    /// `storage` another store than the config's (a copy of it).
    func serve(nodeID: String? = nil, storage: String? = nil) async throws {
        var environment = environment
        if let nodeID { environment["KGW_NODE_ID"] = nodeID }
        if let storage { environment["KGW_STORAGE"] = storage }
        let process = try ChildProcess(
            ChildProcess.productPath("klarna-gateway"), ["serve", "--config", configPath], environment: environment, directory: directory)
        try await process.waitForOutput("klarna-gateway serving")
        func port(_ name: String) throws -> Int {
            let field = process.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("\(name)=") }
            guard let field, let port = Int(field.dropFirst(name.count + 1)) else { throw WaitTimeout(what: "\(name)= in \(process.stdout)") }
            return port
        }
        let ports = (loopback: try port("loopback"), webhooks: try port("webhooks"), admin: try port("admin"))
        gateway.withLockedValue { $0 = (process, ports.loopback, ports.webhooks, ports.admin) }
    }

    /// Starts one more instance of the same store beside the running one, with its own node id, audit trail and
    /// checkpoint file and `extra` settings; the caller stops it. Answers the process and its webhook listener's port.
    func serveAnother(nodeID: String, extra: [String: String] = [:]) async throws -> (process: ChildProcess, webhooks: Int) {
        let environment = environment.merging(extra) { $1 }.merging([
            "KGW_NODE_ID": nodeID, "KGW_AUDIT__PATH": "audit-\(nodeID).sqlite", "KGW_AUDIT__CHECKPOINT_FILE": "checkpoints-\(nodeID).jsonl",
        ]) { $1 }
        let process = try ChildProcess(
            ChildProcess.productPath("klarna-gateway"), ["serve", "--config", configPath], environment: environment, directory: directory)
        others.withLockedValue { $0.append(process) }
        try await process.waitForOutput("klarna-gateway serving")
        let field = process.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("webhooks=") }
        guard let field, let port = Int(field.dropFirst("webhooks=".count)) else { throw WaitTimeout(what: "webhooks= in \(process.stdout)") }
        return (process, port)
    }

    /// Sends `signal` to the running gateway (SIGHUP: reload now).
    func signalGateway(_ signal: Int32) {
        gateway.withLockedValue { $0 }?.process.kill(signal)
    }

    /// Stops the gateway: SIGKILL (nothing is flushed) or SIGTERM (graceful).
    func stopGateway(_ signal: Int32) async throws {
        guard let running = gateway.withLockedValue({ $0 }) else { return }
        running.process.kill(signal)
        _ = try await running.process.wait()
        outputs.withLockedValue { $0.append(running.process.stdout + running.process.stderr) }
        gateway.withLockedValue { $0 = nil }
    }

    var webhooksPort: Int { gateway.withLockedValue { $0?.webhooks ?? 0 } }
    var adminPort: Int { gateway.withLockedValue { $0?.admin ?? 0 } }

    /// A GET on the admin listener (`/readyz`, `/metrics`).
    func adminGet(_ path: String) async throws -> TestHTTPResponse {
        let client = TestHTTPClient(port: adminPort, tls: nil)
        defer { Task { try? await client.close() } }
        return try await client.send("GET", path)
    }

    /// The value of one series on `/metrics` (`name{labels}`), nil when it is not exported.
    func metric(_ series: String) async throws -> Double? {
        let text = try await adminGet("/metrics").text
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
    var loopbackPort: Int { gateway.withLockedValue { $0?.loopback ?? 0 } }
    var webhookURL: String { "https://localhost:\(webhooksPort)/klarna/webhooks/acq" }

    /// `webhooks register` for every `payment.*` event; returns Klarna's webhook id.
    func register() async throws -> String {
        let output = try await cli(["webhooks", "register", "--partner", "acq", "--url", webhookURL, "--events", "payment.*"])
        let words = output.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard let index = words.firstIndex(of: "webhook"), index + 1 < words.count else { throw WaitTimeout(what: "a webhook id in: \(output)") }
        return String(words[index + 1])
    }

    /// A client of the simulator as the acquirer itself (mTLS and its API key).
    func klarna() -> TestHTTPClient {
        TestHTTPClient(
            port: simulatorPort,
            tls: TestTLS(trustRootsPEM: klarnaCA.certificatePEM, clientCertificatePEM: acquirer.certificatePEM, clientKeyPEM: acquirer.privateKeyPEM))
    }

    var klarnaAuthorization: (String, String) { ("Authorization", BasicAuthorization.header(for: Secret(Self.acquirerKey), form: .rawKey).exposedValue) }

    /// A client of the gateway's webhook listener, as Klarna connects to it.
    func webhookClient() -> TestHTTPClient {
        TestHTTPClient(port: webhooksPort, tls: TestTLS(trustRootsPEM: internalCA.certificatePEM))
    }

    /// Creates a payment request for `merchant` through the gateway's proxy (a real state change at Klarna).
    func createPaymentRequest(merchant: String) async throws -> String {
        let client = TestHTTPClient(port: loopbackPort, tls: nil)
        defer { Task { try? await client.close() } }
        let response = try await client.send(
            "POST", "/v2/accounts/\(merchant)/payment/requests", headers: [("Authorization", "Bearer \(shopToken)"), ("Content-Type", "application/json")],
            body: Array(#"{"currency":"EUR","amount":1000}"#.utf8))
        #expect(response.status == 201, "create payment request for \(merchant): \(response.status) \(response.text)")
        return try JSONValue.parse(response.body)["payment_request_id"]?.stringValue ?? ""
    }

    /// Waits until `series` reads `value` (counters are bumped just after the store records an outcome); returns
    /// the last value read.
    func metric(_ series: String, reaching value: Double, timeout: Duration = .seconds(30)) async throws -> Double? {
        let deadline = ContinuousClock.now + timeout
        var last = try await metric(series)
        while last != value && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            last = try await metric(series)
        }
        return last
    }

    /// Connections closed at the connection limit, from `/metrics`: the webhook listeners' series once it reads
    /// `value`, then the proxy's listeners' series.
    func connectionLimitRefusals(reaching value: Double) async throws -> [Double?] {
        let webhooks = try await metric(#"kgw_webhooks_connections_refused_total{reason="connection_limit"}"#, reaching: value)
        return [webhooks, try await metric(#"kgw_ingress_connections_refused_total{reason="connection_limit"}"#)]
    }

    /// Seals a signing key whose secret the test knows (`webhooks keys add`), for events the test signs itself.
    func addKnownKey(id: String, secret: String) async throws {
        let file = directory.appendingPathComponent("key-\(id)").path
        try secret.write(toFile: file, atomically: true, encoding: .utf8)
        try await cli(["webhooks", "keys", "add", "--partner", "acq", "--key-id", id, "--secret-file", file])
    }

    /// Posts an event signed with a known key to the webhook listener on `port`, retrying while the key has not
    /// reached that instance yet (401); returns the final status.
    func postSigned(eventID: String, account: String = "krn:partner:global:account:test:M1", keyID: String, secret: String, port: Int) async throws -> Int {
        let body = Array(("{\"metadata\":{\"event_type\":\"payment.transaction.captured\",\"event_id\":\"\(eventID)\","
            + "\"subject_account_id\":\"\(account)\"},\"payload\":{}}").utf8)
        let signature = KlarnaWebhookSignature.sign(body: body, secret: Secret(secret))
        var status = 0
        for _ in 0..<300 {
            let client = TestHTTPClient(port: port, tls: TestTLS(trustRootsPEM: internalCA.certificatePEM))
            status = (try? await client.send("POST", "/klarna/webhooks/acq", headers: [
                ("Content-Type", "application/json"), ("Klarna-Signing-Key-Id", keyID), ("Klarna-Signature", signature),
            ], body: body))?.status ?? 0
            try? await client.close()
            if status != 401 && status != 0 { return status }
            try await Task.sleep(for: .milliseconds(50))
        }
        return status
    }

    /// Posts `count` new events (ids `prefix-N-random`) signed with a known key to the running gateway's webhook
    /// listener, each of which must be accepted; returns their ids.
    func postAccepted(_ count: Int, prefix: String, keyID: String, secret: String) async throws -> [String] {
        let ids = (0..<count).map { "\(prefix)-\($0)-\(UUID().uuidString.prefix(8))" }
        for id in ids {
            #expect(try await postSigned(eventID: id, keyID: keyID, secret: secret, port: webhooksPort) == 200, "\(id)")
        }
        return ids
    }

    /// Klarna's deliveries to the gateway, as the simulator logged them.
    func klarnaDeliveries() async throws -> [JSONValue] {
        try JSONValue.parse(try await control.send("GET", "/control/webhook-deliveries").body)["deliveries"]?.arrayValue ?? []
    }

    /// Waits until the simulator has `count` deliveries, all answered 2xx by the gateway (so durable there).
    func waitForKlarnaDelivered(count: Int) async throws -> [JSONValue] {
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            let deliveries = try await klarnaDeliveries()
            if deliveries.count >= count, deliveries.allSatisfy({ $0["state"]?.stringValue == "DELIVERED" }) { return deliveries }
            try await Task.sleep(for: .milliseconds(50))
        }
        let states = try await klarnaDeliveries().map { "\($0["state"]?.stringValue ?? "?") \($0["attempts"]?.arrayValue?.last.map { "\($0)" } ?? "")" }
        throw WaitTimeout(what: "\(count) deliveries acknowledged by the gateway: \(states)")
    }

    /// Signing key secrets Klarna created (the simulator shows them to tests only).
    func signingKeySecrets() async throws -> [String] {
        let json = try JSONValue.parse(try await control.send("GET", "/control/signing-keys").body)
        return (json["signing_keys"]?.arrayValue ?? []).compactMap { $0["signing_key"]?.stringValue }
    }

    /// The store's view of events (the CLI's code path, in process).
    func events(state: WebhookEventState? = nil) async throws -> [WebhookEventRecord] {
        try await admin.webhookStore.webhookEvents(WebhookEventQuery(state: state, limit: 10_000))
    }

    /// Waits until `receiver` has answered 2xx to each of `ids`.
    @discardableResult
    func waitForDelivered(_ receiver: WebhookReceiver, ids: Set<String>, timeout: Duration = .seconds(60)) async throws -> [WebhookReceiver.Received] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let delivered = receiver.received.filter { $0.status == 200 }
            if ids.isSubset(of: Set(delivered.compactMap { $0.header("webhook-id") })) { return delivered }
            try await Task.sleep(for: .milliseconds(20))
        }
        let got = Set(receiver.received.filter { $0.status == 200 }.compactMap { $0.header("webhook-id") })
        throw WaitTimeout(what: "deliveries of \(ids.subtracting(got).sorted()) (got \(got.count))")
    }

    /// One webhook record of the audit trail.
    struct AuditRow: Sendable {
        let phase: String
        let operation: String?
        let path: String
        let eventID: String?
        let status: Int?
        let code: String?
    }

    /// The audit trail's webhook records, once there are at least `count` delivery records answered 200 (they are
    /// written just after the store records the delivery).
    func webhookAuditRecords(until count: Int, timeout: Duration = .seconds(30)) async throws -> [AuditRow] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let rows = try await DatabaseQueue(path: directory.appendingPathComponent("audit.sqlite").path).read { db in
                try Row.fetchAll(db, sql: """
                    SELECT phase, operation_id, path, correlation_id, status, gateway_error_code FROM audit_records
                    WHERE operation_family = 'webhooks' OR path LIKE '/klarna/%' OR path = '?'
                    """).map { row in
                    AuditRow(phase: row[0], operation: row[1], path: row[2], eventID: row[3], status: row[4], code: row[5])
                }
            }
            let delivered = rows.filter { $0.operation == "deliverKlarnaWebhook" && $0.status == 200 }.count
            if delivered >= count || ContinuousClock.now > deadline { return rows }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until the store records each of `ids` as delivered: a receiver's 200 is recorded just after it is sent.
    func waitForStoreDelivered(_ ids: Set<String>, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if ids.isSubset(of: Set(try await events(state: .delivered).map(\.eventID))) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw WaitTimeout(what: "the store to record \(ids.count) events as delivered")
    }

    /// Every planted and Klarna-created secret (and `planted`, a test's own), and everything they must not appear in:
    /// every process's output (and whatever a test added to `outputs`), and every SQLite file in the directory (the store, its copies, the audit trail, with their WAL files).
    func searchForSecrets(also planted: [String] = []) async throws {
        let secrets = try await signingKeySecrets() + [Self.acquirerKey, Self.ordersSecret, Self.ledgerSecret, secretPart(ofPrivateKeyPEM: gatewayClient.privateKeyPEM)]
            + planted
        #expect(try await signingKeySecrets().count >= 1, "the simulator created a signing key")
        var haystacks = outputs.withLockedValue { $0 }
        if let running = gateway.withLockedValue({ $0 }) { haystacks.append(running.process.stdout + running.process.stderr) }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".sqlite") }
        // The store is a file here unless it is in PostgreSQL; the trail always is.
        #expect((files.contains("gateway.sqlite") || storage.hasPrefix("postgres")) && files.contains("audit.sqlite"))
        for name in files {
            if let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) {
                haystacks.append(String(decoding: data, as: UTF8.self))
            }
        }
        for secret in secrets {
            for (index, haystack) in haystacks.enumerated() {
                // A Bool, so that a failure does not print the output, and the secret in it, into the test log.
                let leaked = haystack.contains(secret)
                #expect(!leaked, "a secret (\(secret.prefix(4))…) appears in output \(index)")
            }
        }
    }

    func stop() async {
        try? await stopGateway(SIGTERM)
        for process in others.withLockedValue({ $0 }) {
            process.kill(SIGTERM)
            _ = try? await process.wait()
        }
        simulator.kill(SIGTERM)
        _ = try? await simulator.wait()
        try? await control.close()
        try? await orders.stop()
        try? await ledger.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A new database on the test run's PostgreSQL server (`bin/with-postgres`): `prefix` and a random tail.
func webhookTestDatabase(_ prefix: String) async throws -> String {
    let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is required here")
    return try await PostgresStore.createDatabase(named: TestPostgres.databaseName(prefix), on: server)
}

/// Runs `body` against a fresh harness and always stops it.
func withWebhooks(
    environment: [String: String] = [:], storage: String = "gateway.sqlite", _ body: (WebhookHarness) async throws -> Void
) async throws {
    let harness = try await WebhookHarness.start(environment: environment, storage: storage)
    do {
        try await body(harness)
    } catch {
        await harness.stop()
        throw error
    }
    await harness.stop()
}

extension WebhookReceiver.Received {
    /// Whether the Standard Webhooks signature verifies under `secret`, for the `webhook-id` and timestamp it carries.
    func verifies(secret: String) -> Bool {
        guard let id = header("webhook-id"), let timestamp = header("webhook-timestamp").flatMap({ Int64($0) }), let signature = header("webhook-signature")
        else { return false }
        return StandardWebhookSignature.verify(header: signature, id: id, timestamp: timestamp, body: body, secret: Secret(secret))
    }
}

/// A wait that ran out.
struct WaitTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}
