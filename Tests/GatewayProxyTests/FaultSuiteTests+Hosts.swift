import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import KlarnaSimulator
import NIOConcurrencyHelpers
import NIOPosix
import Testing

/// The fault cases about the upstream host itself: a server certificate from the wrong CA, a refused connection, the
/// simulator killed and restarted under load. Each gets a partner of its own, so the harness's simulator shows that a
/// failing host does not disturb the others (breakers are per host).
extension FaultSuiteTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Adds partner `id` (the harness's acquirer key and certificate) at `baseURL`, with merchant `merchant` on `account`.
    static func addPartner(_ gw: GatewayHarness, id: String, baseURL: String, merchant: String, account: String) async throws {
        _ = try await gw.admin.addPartner(NewPartner(
            id: id, environment: .test, apiKey: Secret(GatewayHarness.acquirerKey), certificatePEM: gw.acquirer.certificatePEM,
            clientKeyPEM: Secret(gw.acquirer.privateKeyPEM), baseURL: baseURL, authForm: .rawKey))
        try await gw.admin.addMerchant(id: merchant, partnerID: id, account: account)
    }

    /// The egress list: the harness's simulator plus `ports` on localhost.
    static func egress(_ gw: GatewayHarness, _ ports: [Int]) -> [String: String] {
        let hosts = ([gw.simulator.port] + ports).map { "{host: \"localhost:\($0)\", environment: test}" }
        return ["KGW_UPSTREAM__EGRESS": "[\(hosts.joined(separator: ", "))]"]
    }

    static func simulatorConfiguration(_ gw: GatewayHarness, serverCA: SimulatorPKI, port: Int = 0, controlPort: Int = 0, account: String) throws -> SimulatorConfiguration {
        let server = try serverCA.issueServer()
        var configuration = SimulatorConfiguration(
            listen: .init(port: port), control: .init(port: controlPort),
            tls: .init(certificatePEM: server.certificatePEM, keyPEM: server.privateKeyPEM, clientCAPEM: gw.klarnaCA.certificatePEM),
            acquirers: [.init(id: "ACQ1", krn: "krn:partner:global:account:test:ACQ1", apiKeys: [GatewayHarness.acquirerKey])],
            merchants: [.init(krn: account, acquirer: "ACQ1")], rateLimits: .unlimited)
        configuration.catalogueFile = repository.appendingPathComponent("config/catalogue/operations.tsv").path
        return configuration
    }

    @Test("wrong upstream CA: nothing is sent, 503 GATEWAY_UPSTREAM_UNAVAILABLE after the connection attempts; other hosts unaffected", .timeLimit(.minutes(3)))
    func wrongUpstreamCA() async throws {
        let foreign = NIOLockedValueBox<KlarnaSimulatorServer?>(nil)
        var settings = Self.base
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__FAILURE_THRESHOLD"] = "5"
        try await withFaultGateway(settings: settings, configure: { gw in
            _ = try await Self.setUp(gw)
            // A server whose certificate the gateway's upstream CA did not sign.
            let (otherCA, _) = try SimulatorPKI.makeCA(name: "not Klarna's CA")
            let server = try await KlarnaSimulatorServer.start(
                configuration: try Self.simulatorConfiguration(gw, serverCA: otherCA, account: "krn:partner:global:account:test:F1"),
                group: MultiThreadedEventLoopGroup.singleton)
            foreign.withLockedValue { $0 = server }
            try await Self.addPartner(gw, id: "acq_foreign", baseURL: "https://localhost:\(server.port)", merchant: "mf", account: "krn:partner:global:account:test:F1")
            return Self.egress(gw, [server.port])
        }) { fx in
            let gw = fx.gw
            let server = try #require(foreign.withLockedValue { $0 })
            let baseline = try await Self.warmUp(fx)
            let client = fx.client()
            let (method, path, headers, body) = ("POST", "/v2/accounts/mf/payment/requests", [gw.bearer("tester"), ("Content-Type", "application/json")], FaultCalls.paymentRequest("ca-first"))
            let first = try await client.send(method, path, headers: headers, body: body)
            try await client.close()
            #expect(first.status == 503 && first.errorCode == "GATEWAY_UPSTREAM_UNAVAILABLE")
            #expect(try fx.attempts(requestID: try #require(first.header("Klarna-Gateway-Request-Id"))) == 3, "a handshake failure is retried: nothing was sent")
            let results = await runLoad(fx, count: 40) { i in
                ("POST", "/v2/accounts/mf/payment/requests", [gw.bearer("tester"), ("Content-Type", "application/json")], FaultCalls.paymentRequest("ca-\(i)", size: Self.bodySize))
            }
            #expect(results.allSatisfy { $0.status == 503 && $0.code == "GATEWAY_UPSTREAM_UNAVAILABLE" }, "\(results.map { "\($0.status) \($0.code ?? "")" })")
            #expect(results.contains { $0.retryAfter != nil }, "after five failed handshakes the breaker answers with Retry-After")
            let record = try await TestHTTPClient(port: server.controlPort, tls: nil).send("GET", "/control/requests")
            #expect(try JSONValue.parse(record.body)["requests"]?.arrayValue?.isEmpty == true, "nothing got past the TLS handshake")
            try await Self.expectRecovered(fx, baselineKB: baseline)
            try await server.shutdown()
        }
    }

    @Test("connection refused: retried, then 503 GATEWAY_UPSTREAM_UNAVAILABLE; the host's breaker opens with Retry-After while other hosts serve", .timeLimit(.minutes(3)))
    func connectionRefused() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__FAILURE_THRESHOLD"] = "5"
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__OPEN_MS"] = "60000"
        let closedPort = try await FaultGateway.freePort()
        try await withFaultGateway(settings: settings, configure: { gw in
            _ = try await Self.setUp(gw)
            try await Self.addPartner(gw, id: "acq_down", baseURL: "https://localhost:\(closedPort)", merchant: "md", account: "krn:partner:global:account:test:D1")
            return Self.egress(gw, [closedPort])
        }) { fx in
            let gw = fx.gw
            let baseline = try await Self.warmUp(fx)
            let client = fx.client()
            let first = try await client.send("GET", "/v2/accounts/md/payment/transactions/krn:payment:eu1:transaction:seed-D1", headers: [gw.bearer("tester")])
            #expect(first.status == 503 && first.errorCode == "GATEWAY_UPSTREAM_UNAVAILABLE")
            #expect(try fx.attempts(requestID: try #require(first.header("Klarna-Gateway-Request-Id"))) == 3)
            try await client.close()
            let results = await runLoad(fx, count: 60) { i in
                ("POST", "/v2/accounts/md/payment/requests", [gw.bearer("tester"), ("Content-Type", "application/json")], FaultCalls.paymentRequest("refused-\(i)", size: Self.bodySize))
            }
            #expect(results.allSatisfy { $0.status == 503 && $0.code == "GATEWAY_UPSTREAM_UNAVAILABLE" })
            let fast = results.filter { $0.retryAfter != nil }
            #expect(fast.count > 40, "the open breaker answers at once: \(fast.count) of 60 had Retry-After")
            let unsent = try fast.compactMap(\.requestID).filter { try fx.attempts(requestID: $0) == 0 }
            #expect(unsent.count > 30, "an open breaker refuses before any attempt (\(unsent.count) calls made none)")
            #expect(try await fx.readiness()["upstream"]?["breakers"]?["localhost:\(closedPort)"]?.stringValue == "open")
            // The harness's simulator is another host: its calls still go through (checked by expectRecovered).
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }

    @Test("the simulator killed and restarted during load: only documented answers, no key-less POST twice, and service resumes", .timeLimit(.minutes(5)))
    func simulatorKilledAndRestarted() async throws {
        var settings = Self.base
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__FAILURE_THRESHOLD"] = "5"
        settings["KGW_UPSTREAM__CIRCUIT_BREAKER__OPEN_MS"] = "500"
        let port = try await FaultGateway.freePort()
        let controlPort = try await FaultGateway.freePort()
        let account = "krn:partner:global:account:test:X1"
        try await withFaultGateway(settings: settings, configure: { gw in
            _ = try await Self.setUp(gw)
            try await Self.addPartner(gw, id: "acq_ext", baseURL: "https://localhost:\(port)", merchant: "mx", account: account)
            return Self.egress(gw, [port])
        }) { fx in
            let gw = fx.gw
            let configuration = try Self.simulatorConfiguration(gw, serverCA: gw.klarnaCA, port: port, controlPort: controlPort, account: account)
            let configPath = gw.directory.appendingPathComponent("external-simulator.json")
            try JSONEncoder().encode(configuration).write(to: configPath)
            func startSimulator() async throws -> ChildProcess {
                let child = try ChildProcess(ChildProcess.productPath("klarna-simulator"), ["--config", configPath.path], directory: gw.directory)
                try await child.waitForOutput("klarna-simulator listening")
                return child
            }
            var simulator = try await startSimulator()
            let baseline = try await Self.warmUp(fx)

            // What the simulator received, polled continuously since a kill -9 takes its record with it.
            let seen = NIOLockedValueBox<[String: [String?]]>([:])
            let stop = NIOLockedValueBox(false)
            let poller = Task {
                var since = 0
                let control = TestHTTPClient(port: controlPort, tls: nil)
                while !stop.withLockedValue({ $0 }) {
                    if let response = try? await control.send("GET", "/control/requests?since=\(since)"),
                        let entries = (try? JSONValue.parse(response.body))?["requests"]?.arrayValue {
                        since = max(entries.compactMap { $0["sequence"]?.intValue }.max() ?? since, since)
                        seen.withLockedValue { seen in
                            for entry in entries where entry["method"]?.stringValue == "POST" {
                                let body = entry["body_sha256"]?.stringValue ?? ""
                                seen[body, default: []].append(entry["headers"]?["Klarna-Idempotency-Key"]?.stringValue)
                            }
                        }
                    } else {
                        // The simulator is down; the restarted one numbers its record from 1 again.
                        since = 0
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                try? await control.close()
            }

            let results = NIOLockedValueBox<[CallResult]>([])
            let counter = NIOLockedValueBox(0)
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for lane in 0..<6 {
                        group.addTask {
                            let client = fx.client()
                            while !stop.withLockedValue({ $0 }) {
                                let n = counter.withLockedValue { value -> Int in
                                    defer { value += 1 }
                                    return value
                                }
                                let post = lane % 2 == 0
                                let path = post ? "/v2/accounts/mx/payment/requests" : "/v2/accounts/mx/payment/transactions/krn:payment:eu1:transaction:seed-X1"
                                var headers = [gw.bearer("tester")]
                                if post { headers.append(("Content-Type", "application/json")) }
                                do {
                                    let response = try await client.send(post ? "POST" : "GET", path, headers: headers, body: post ? FaultCalls.paymentRequest("kill-\(n)", size: 20_000) : nil)
                                    results.withLockedValue {
                                        $0.append(CallResult(status: response.status, code: response.errorCode, requestID: response.header("Klarna-Gateway-Request-Id"), retryAfter: response.header("Retry-After")))
                                    }
                                } catch {
                                    results.withLockedValue { $0.append(CallResult(status: 0, failed: true)) }
                                }
                            }
                            try? await client.close()
                        }
                    }
                }
            }
            func waitFor(_ what: String, _ condition: @escaping ([CallResult]) -> Bool) async throws {
                let deadline = ContinuousClock.now + .seconds(90)
                while !condition(results.withLockedValue { $0 }) {
                    guard ContinuousClock.now < deadline else {
                        Issue.record("waited too long for \(what)")
                        return
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await waitFor("calls to flow") { $0.filter { $0.status == 200 || $0.status == 201 }.count >= 40 }
            simulator.kill(SIGKILL)
            _ = try await simulator.wait()
            let beforeRestart = results.withLockedValue { $0.count }
            try await waitFor("failures while the simulator is down") { $0.dropFirst(beforeRestart).filter { $0.status >= 500 }.count >= 20 }
            simulator = try await startSimulator()
            let afterRestart = results.withLockedValue { $0.count }
            try await waitFor("service to resume") { $0.dropFirst(afterRestart).filter { $0.status == 200 || $0.status == 201 }.count >= 40 }
            stop.withLockedValue { $0 = true }
            await load.value
            await poller.value
            simulator.kill(SIGTERM)
            _ = try await simulator.wait()

            let all = results.withLockedValue { $0 }
            #expect(all.allSatisfy { !$0.failed }, "no caller saw a broken connection")
            for result in all {
                let documented = result.status == 200 || result.status == 201
                    || (result.status == 503 && result.code == "GATEWAY_UPSTREAM_UNAVAILABLE")
                    || (result.status == 504 && ["GATEWAY_UPSTREAM_OUTCOME_UNKNOWN", "GATEWAY_UPSTREAM_TIMEOUT"].contains(result.code ?? ""))
                #expect(documented, "\(result)")
            }
            let statuses = Dictionary(grouping: all, by: { "\($0.status) \($0.code ?? "")" }).mapValues(\.count)
            print("kill/restart: \(statuses)")
            for (body, keys) in seen.withLockedValue({ $0 }) where keys.contains(where: { $0 == nil }) {
                #expect(keys.count == 1, "a key-less POST (body \(body.prefix(12))) reached the simulator \(keys.count) times")
            }
            try await Self.expectRecovered(fx, baselineKB: baseline)
        }
    }
}
