import Foundation
import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import KlarnaSimulator
import NIOConcurrencyHelpers
import Testing

/// Several `klarna-gateway serve` processes on loopback sharing one PostgreSQL database (a fresh one on the server
/// bin/with-postgres starts), in front of the Klarna simulator run as its own process: the scale-out suite's
/// fixture. Nodes can be stopped and started again by index; with `throughRelay`, the gateways reach PostgreSQL
/// through a `TCPRelay` the test can cut and restore, as if the database went away, without touching the server
/// other tests share.
///
/// Merchants m1…m4 (accounts M1…M4) exist from the start; the simulator also knows accounts N1…N4, for merchants
/// a test adds while the cluster runs. Caller `orders` may call every merchant of partner `acq`.
final class GatewayCluster: Sendable {
    static let acquirerKey = "klarna_test_api_PLANTEDclusterKEY5d2c1e"
    static let accounts = ["M1", "M2", "M3", "M4"]
    static let spareAccounts = ["N1", "N2", "N3", "N4"]
    static let access = "callers:\n  orders: {merchants: [\"partner:acq\"], families: [payment-transaction]}\n"

    let directory: URL
    /// This cluster's database, reached directly.
    let databaseURL: String
    /// What the gateways are configured with: `databaseURL`, or the relay in front of it.
    let storage: String
    let relay: TCPRelay?
    let simulator: ChildProcess
    let simulatorPort: Int
    let controlPort: Int
    /// The admin operations on the shared store (the CLI's code path, in this process).
    let admin: AdminService
    let configPath: String
    /// Whether the audit trail is in the shared database (else a SQLite file per node).
    let auditInStore: Bool
    /// Caller `orders`'s bearer token.
    let token: String
    private let nodes: NIOLockedValueBox<[ClusterNode?]>

    var runningNodes: [ClusterNode] { nodes.withLockedValue { $0.compactMap { $0 } } }

    func node(_ index: Int) -> ClusterNode? { nodes.withLockedValue { $0[index] } }

    /// Whether PostgreSQL is required (CI, `KGW_REQUIRE_POSTGRES=1`) or given (`KGW_TEST_POSTGRES_URL`): the suite
    /// runs when either holds, and fails rather than skips when it is required but missing.
    static var enabled: Bool { PostgresPropagationTests.serverURL != nil || PostgresPropagationTests.required }

    /// Starts the simulator, a database with partner `acq` and merchants m1…m4, and `instances` gateways with
    /// `rateLimits` as their policy; `settings` are `KGW_…` overrides for every node. The database is made on
    /// `server` (a `PostgresCluster` of the test's own, for a case that crashes it), else on bin/with-postgres's.
    ///
    /// The audit trail is in the shared database, one chain per node (the production layout), unless
    /// `auditInStore` is false: then each node keeps a SQLite file, for a case that takes the database away to test
    /// the limiter alone (with the trail in PostgreSQL, calls are refused by the audit rule instead).
    static func start(
        instances: Int = 3, rateLimits: String, throughRelay: Bool = false, settings: [String: String] = [:], server: String? = nil,
        auditInStore: Bool = true
    ) async throws -> GatewayCluster {
        guard let server = server ?? PostgresPropagationTests.serverURL else {
            throw WaitTimeout(what: "KGW_TEST_POSTGRES_URL (PostgreSQL is required here; bin/test and bin/with-postgres start a server)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let catalogue = repository.appendingPathComponent("config/catalogue/operations.tsv").path

        // Klarna's side, as its own process.
        let klarna = try KlarnaSidePKI()
        let klarnaCA = klarna.ca
        let acquirer = klarna.acquirer
        var simulatorConfiguration = klarna.configuration(
            acquirerKey: acquirerKey,
            merchants: (accounts + spareAccounts).map { .init(krn: "krn:partner:global:account:test:\($0)", acquirer: "ACQ1") },
            rateLimits: .unlimited, recordCapacity: 100_000)
        simulatorConfiguration.catalogueFile = catalogue
        let simulated = try await SimulatorProcess.start(simulatorConfiguration, directory: directory)
        let simulator = simulated.child
        let ports = [simulated.port, simulated.controlPort]

        let database = try await PostgresStore.createDatabase(named: TestPostgres.databaseName("kgw_cluster_"), on: server)
        var storage = database
        var relay: TCPRelay?
        if throughRelay {
            var components = try #require(URLComponents(string: database))
            let started = try await TCPRelay.start(to: components.host ?? "127.0.0.1", port: components.port ?? 5432)
            components.port = started.port
            storage = try #require(components.string)
            relay = started
        }

        func write(_ name: String, _ text: String) throws {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try write("klarna-ca.pem", klarnaCA.certificatePEM)
        try write("access.yaml", access)
        try write("rate-limits.yaml", rateLimits)
        try write("gateway.yaml", """
            node_id: cluster-node
            storage: "\(storage)"
            master_key: {file: master.key}
            catalogue: \(catalogue)
            policies: {access: access.yaml, rate_limits: rate-limits.yaml}
            listeners:
              - {name: loopback, address: 127.0.0.1, port: 0}
            upstream:
              ca_file: klarna-ca.pem
              egress: [{host: "localhost:\(ports[0])", environment: test}]
              response_timeout_ms: 10000
            reload_interval_ms: 500
            log_level: notice
            admin: {address: 127.0.0.1, port: 0}
            audit: {path: audit.sqlite}
            """)
        let configPath = directory.appendingPathComponent("gateway.yaml").path
        let config = try ConfigLoader.loadGateway(path: configPath, environment: [:])
        try AdminService.initializeKeyRing(config: config)
        let admin = try await AdminService.open(config: config, environment: [:])
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: Secret(acquirerKey), certificatePEM: acquirer.certificatePEM,
            clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:\(ports[0])", authForm: .rawKey))
        for (index, account) in accounts.enumerated() {
            try await admin.addMerchant(id: "m\(index + 1)", partnerID: "acq", account: "krn:partner:global:account:test:\(account)")
        }
        let token = try #require(try await admin.addCaller(id: "orders").token?.rendered.exposedValue)

        let cluster = GatewayCluster(
            directory: directory, databaseURL: database, storage: storage, relay: relay, simulator: simulator, simulatorPort: ports[0],
            controlPort: ports[1], admin: admin, configPath: configPath, token: token, nodes: instances, auditInStore: auditInStore)
        do {
            for index in 0..<instances { try await cluster.startNode(index, settings: settings) }
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    private init(
        directory: URL, databaseURL: String, storage: String, relay: TCPRelay?, simulator: ChildProcess, simulatorPort: Int,
        controlPort: Int, admin: AdminService, configPath: String, token: String, nodes: Int, auditInStore: Bool
    ) {
        self.auditInStore = auditInStore
        self.directory = directory
        self.databaseURL = databaseURL
        self.storage = storage
        self.relay = relay
        self.simulator = simulator
        self.simulatorPort = simulatorPort
        self.controlPort = controlPort
        self.admin = admin
        self.configPath = configPath
        self.token = token
        self.nodes = NIOLockedValueBox(Array(repeating: nil, count: nodes))
    }

    /// Starts (or starts again) node `index` as `gw-<index+1>`, with its own audit chain and checkpoint file, and
    /// waits until it serves.
    @discardableResult
    func startNode(_ index: Int, settings: [String: String] = [:]) async throws -> ClusterNode {
        let nodeID = "gw-\(index + 1)"
        let auditPath = auditInStore ? storage : directory.appendingPathComponent("audit-\(nodeID).sqlite").path
        var environment = [
            "KGW_NODE_ID": nodeID, "KGW_AUDIT__PATH": auditPath, "KGW_AUDIT__CHECKPOINT_FILE": checkpointFile(nodeID),
        ]
        environment.merge(settings) { $1 }
        let child = try ChildProcess(
            ChildProcess.productPath("klarna-gateway"), ["serve", "--config", configPath], environment: environment, directory: directory)
        do {
            try await child.waitForOutput("klarna-gateway serving")
        } catch {
            child.kill(SIGKILL)
            throw error
        }
        var ports: [String: Int] = [:]
        let line = child.stdout.split(separator: "\n").first { $0.hasPrefix("klarna-gateway serving") } ?? ""
        for field in line.split(separator: " ") {
            let parts = field.split(separator: "=")
            if parts.count == 2, let port = Int(parts[1]) { ports[String(parts[0])] = port }
        }
        let node = ClusterNode(
            nodeID: nodeID, child: child, port: ports["loopback"] ?? 0, adminPort: ports["admin"] ?? 0, auditPath: auditPath, token: token)
        nodes.withLockedValue { $0[index] = node }
        return node
    }

    /// Stops node `index` with SIGTERM; returns its exit status.
    @discardableResult
    func stopNode(_ index: Int) async throws -> Int32? {
        guard let node = nodes.withLockedValue({ nodes in defer { nodes[index] = nil }; return nodes[index] }) else { return nil }
        node.child.kill(SIGTERM)
        if let status = try await node.child.exitStatus(within: .seconds(90)) { return status }
        // What the node logged and where its threads wait are what tell a hang at shutdown apart.
        let stacks = await node.child.threadStacks() ?? "(no stacks: gdb missing or not allowed to attach)"
        node.child.kill(SIGKILL)
        throw WaitTimeout(what: "\(node.nodeID) to stop after SIGTERM; its log:\n\(node.child.stderr.suffix(4000))\nits threads:\n\(stacks.suffix(12000))")
    }

    /// Waits until every running node's `/readyz` reports `instances` instances seen and no fallback.
    func waitUntilLeasing(instances: Int, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("every node to count \(instances) instances and lease from the ledger", timeout: timeout) {
            for node in runningNodes {
                let quota = try await node.readiness()["quota"]
                guard quota?["instances"]?.intValue == instances, quota?["fallback"]?.boolValue == false else { return false }
            }
            return true
        }
    }

    /// Node `nodeID`'s checkpoint file, the copy an operator would ship elsewhere.
    func checkpointFile(_ nodeID: String) -> String { directory.appendingPathComponent("checkpoints-\(nodeID).jsonl").path }

    /// `klarna-gateway audit verify` over the trail in the database, with every node's shipped checkpoints.
    func verifyAudit(nodes: [String]) async throws -> (status: Int32, output: String) {
        let arguments = ["audit", "verify", "--audit-db", databaseURL] + nodes.flatMap { ["--from-checkpoint", checkpointFile($0)] }
        let result = try await ChildProcess.run(ChildProcess.productPath("klarna-gateway"), arguments, directory: directory)
        return (result.status, result.stdout + result.stderr)
    }

    /// Every record of the trail in the database (`audit export`, all chains merged by time), as JSON objects.
    func auditRecords() async throws -> [JSONValue] {
        let result = try await ChildProcess.run(
            ChildProcess.productPath("klarna-gateway"), ["audit", "export", "--audit-db", databaseURL], directory: directory)
        guard result.status == 0 else { throw WaitTimeout(what: "audit export: \(result.stderr)") }
        return try result.stdout.split(separator: "\n").map { try JSONValue.parse(Array($0.utf8)) }
    }

    /// What the simulator received, oldest first.
    func received() async throws -> [JSONValue] {
        let control = TestHTTPClient(port: controlPort, tls: nil)
        defer { Task { try? await control.close() } }
        let response = try await control.send("GET", "/control/requests")
        return try JSONValue.parse(response.body)["requests"]?.arrayValue ?? []
    }

    /// Stops every node, the simulator and the relay, closes the store and deletes the directory (the database
    /// is left to die with the throwaway server).
    func stop() async {
        for index in 0..<nodes.withLockedValue({ $0.count }) { _ = try? await stopNode(index) }
        simulator.kill(SIGTERM)
        _ = try? await simulator.wait(timeout: .seconds(30))
        await relay?.close()
        (admin.store as? PostgresStore)?.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// One `klarna-gateway serve` process of a cluster.
struct ClusterNode: Sendable {
    let nodeID: String
    let child: ChildProcess
    /// The plain loopback listener.
    let port: Int
    let adminPort: Int
    /// The node's own audit file (kept after the node stops, until the cluster stops; the same file again when
    /// the node is started again).
    let auditPath: String
    let token: String

    /// A client of the node's loopback listener.
    func client() -> TestHTTPClient { TestHTTPClient(port: port, tls: nil) }

    /// `/readyz` as JSON.
    func readiness() async throws -> JSONValue {
        let admin = TestHTTPClient(port: adminPort, tls: nil)
        defer { Task { try? await admin.close() } }
        return try await admin.send("GET", "/readyz").json
    }

    /// The `/metrics` text.
    func metrics() async throws -> String {
        let admin = TestHTTPClient(port: adminPort, tls: nil)
        defer { Task { try? await admin.close() } }
        return try await admin.send("GET", "/metrics").text
    }

    /// A read of `merchant`'s seeded transaction (account `account`) as caller `orders`.
    func readTransaction(_ client: TestHTTPClient, merchant: String, account: String) async throws -> TestHTTPResponse {
        try await client.send(
            "GET", "/v2/accounts/\(merchant)/payment/transactions/krn:payment:eu1:transaction:seed-\(account)",
            headers: [("Authorization", "Bearer \(token)")])
    }
}

/// Calls offered to a cluster's nodes at a fixed rate, and what came back.
struct ClusterLoad: Sendable {
    /// Per node: answers relayed from Klarna (the call was admitted), refusals by the rate limit, anything else.
    struct Tally: Sendable {
        var admitted = 0
        var limited = 0
        var other: [String] = []
        /// The request ids of the admitted calls (what the caller was told the gateway recorded).
        var requestIDs: [String] = []
        /// When each call was sent, on the test's clock.
        var sent: [ContinuousClock.Instant] = []
    }

    /// Tallies by node index.
    var tallies: [Int: Tally]
    var admitted: Int { tallies.values.reduce(0) { $0 + $1.admitted } }
    var limited: Int { tallies.values.reduce(0) { $0 + $1.limited } }
    var other: [String] { tallies.values.flatMap(\.other) }
    var sent: [ContinuousClock.Instant] { tallies.values.flatMap(\.sent).sorted() }
    var requestIDs: [String] { tallies.values.flatMap(\.requestIDs) }

    /// Seconds from the first call sent to the last.
    var span: Double {
        let all = sent
        guard let first = all.first, let last = all.last else { return 0 }
        let duration = last - first
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Offers `perSecond` reads of `merchant` (account `account`) to each of `nodes` for `duration`, from `lanes`
    /// connections per node, calls spaced evenly and the nodes interleaved.
    static func drive(
        _ nodes: [ClusterNode], merchant: String, account: String, perSecond: Double, duration: Duration, lanes: Int = 4
    ) async throws -> ClusterLoad {
        let tallies = NIOLockedValueBox([Int: Tally]())
        let start = ContinuousClock.now + .milliseconds(200)
        let count = Int(perSecond * (Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18))
        let spacing = Duration.nanoseconds(Int64(1e9 / perSecond))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, node) in nodes.enumerated() {
                let offset = spacing * index / nodes.count
                for lane in 0..<lanes {
                    group.addTask {
                        let client = node.client()
                        for call in stride(from: lane, to: count, by: lanes) {
                            try await Task.sleep(until: start + offset + spacing * call, clock: .continuous)
                            let sent = ContinuousClock.now
                            let response = try await node.readTransaction(client, merchant: merchant, account: account)
                            tallies.withLockedValue { tallies in
                                tallies[index, default: Tally()].sent.append(sent)
                                switch (response.status, response.errorCode) {
                                case (200, _):
                                    tallies[index, default: Tally()].admitted += 1
                                    tallies[index, default: Tally()].requestIDs.append(response.header("Klarna-Gateway-Request-Id") ?? "")
                                case (429, "GATEWAY_RATE_LIMITED"): tallies[index, default: Tally()].limited += 1
                                default: tallies[index, default: Tally()].other.append("\(response.status) \(response.errorCode ?? "")")
                                }
                            }
                        }
                        try await client.close()
                    }
                }
            }
            try await group.waitForAll()
        }
        return ClusterLoad(tallies: tallies.withLockedValue { $0 })
    }
}

