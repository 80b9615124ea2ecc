import Foundation
import GatewayCore
import GatewayTestSupport
import Testing
@testable import KlarnaSimulator

@Suite struct RoutingTests {
    /// Every catalogue operation is routed: none answers the unknown-route 404 or 405, and canned ones succeed.
    @Test func everyCatalogueOperationAnswers() async throws {
        let catalogue = try OperationCatalogue(tsv: String(contentsOfFile: SimulatorConfiguration.sourceTreeCatalogue, encoding: .utf8))
        try await withSimulator { sim in
            for operation in catalogue.operations {
                var path = operation.template.replacingOccurrences(of: "{partner_account_id}", with: SimulatorHarness.merchant)
                while let open = path.firstIndex(of: "{"), let close = path[open...].firstIndex(of: "}") {
                    path.replaceSubrange(open...close, with: "sample-id")
                }
                let key = operation.scope == .direct ? SimulatorHarness.merchantKey : SimulatorHarness.acquirerKey
                let body: JSONValue? = ["POST", "PUT", "PATCH"].contains(operation.method) ? [:] : nil
                let response = try await sim.call(operation.method, path, json: body, key: key)
                #expect(response.json["error_code"]?.stringValue != "NOT_FOUND", "\(operation.id) is not routed")
                #expect(response.status != 405, "\(operation.id)")
                #expect(response.status < 500, "\(operation.id) answered \(response.status)")
                #expect(response.header("Klarna-Mtls-Verification-Status") == "VALID")
                if response.status >= 400 {
                    #expect(response.json["error_type"] != nil, "\(operation.id) error without Klarna's shape")
                }
            }
            let unknown = try await sim.call("GET", "/v2/nothing/here")
            #expect(unknown.status == 404)
            #expect(unknown.json["error_code"]?.stringValue == "NOT_FOUND")
        }
    }

    @Test func oversizedBodiesAre413() async throws {
        try await withSimulator { sim in
            let big = [UInt8](repeating: UInt8(ascii: "a"), count: (1 << 20) + 1)
            let response = try await sim.api.send("POST", "\(m1)/payment/requests", headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")], body: big)
            #expect(response.status == 413)
            #expect(response.header("Klarna-Mtls-Verification-Status") == "VALID")
        }
    }

    @Test func malformedRequestsGet400() async throws {
        try await withSimulator { sim in
            let bytes = try await RawSocket.exchange(port: sim.server.port, tls: sim.tls, bytes: Array("GARBAGE\r\n\r\n".utf8), readTimeout: .seconds(2))
            #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 400"))
        }
    }
}

@Suite struct CommandLineTests {
    @Test func initThenRunThenTerminate() async throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("sim-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let binary = ChildProcess.productPath("klarna-simulator")
        let initialised = try await ChildProcess.run(binary, ["init", "--dir", directory.path, "--merchants", "2", "--catalogue-file", SimulatorConfiguration.sourceTreeCatalogue], directory: directory)
        #expect(initialised.status == 0, "\(initialised.stderr)")
        #expect(initialised.stdout.contains("simulator.yaml"))
        let keyPath = directory.appendingPathComponent("acquirer-api-key").path
        let attributes = try FileManager.default.attributesOfItem(atPath: keyPath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let apiKey = try String(contentsOfFile: keyPath, encoding: .utf8)
        #expect(apiKey.hasPrefix("klarna_test_api_"))

        let child = try ChildProcess(binary, ["--config", directory.appendingPathComponent("simulator.yaml").path], directory: directory)
        try await child.waitForOutput("klarna-simulator listening on https://127.0.0.1:")
        let line = try #require(child.stdout.split(separator: "\n").first { $0.hasPrefix("klarna-simulator listening") })
        let parts = line.split(separator: " ")
        let port = try #require(Int(parts[3].split(separator: ":").last ?? ""))
        let ca = try String(contentsOf: directory.appendingPathComponent("ca.pem"), encoding: .utf8)
        let client = TestHTTPClient(port: port, tls: TestTLS(
            trustRootsPEM: ca, clientCertificatePEM: try String(contentsOf: directory.appendingPathComponent("acquirer.pem"), encoding: .utf8),
            clientKeyPEM: try String(contentsOf: directory.appendingPathComponent("acquirer.key"), encoding: .utf8)
        ))
        let response = try await client.send("POST", "/v2/accounts/krn:partner:global:account:test:M2/payment/requests",
            headers: [("Authorization", "Basic \(apiKey)"), ("Content-Type", "application/json")], body: Array(#"{"currency":"EUR","amount":1000}"#.utf8))
        #expect(response.status == 201)
        try await client.close()
        child.kill(SIGTERM)
        #expect(try await child.wait(timeout: .seconds(20)) == 0)
        #expect(child.stdout.contains("klarna-simulator stopped"))
        #expect(!child.stdout.contains(apiKey) && !child.stderr.contains(apiKey))
    }
}

@Suite struct LoadGeneratorTests {
    @Test func benchDrivesTheSeededTransaction() async throws {
        try await withSimulator { sim in
            let plan = SimulatorLoadGenerator.Plan(
                host: "127.0.0.1", port: sim.server.port,
                path: "\(m1)/payment/transactions/krn:payment:eu1:transaction:seed-M1",
                headers: [("Authorization", "Basic \(SimulatorHarness.acquirerKey)")], connections: 2, seconds: 1,
                trustRootsPEM: sim.ca.certificatePEM, certificatePEM: sim.client.certificatePEM, keyPEM: sim.client.privateKeyPEM
            )
            let result = try await SimulatorLoadGenerator.run(plan, threads: 1)
            // Correctness only: how many complete in a second depends on the machine's load (a count threshold here
            // failed on a busy 2-core machine); the rate is measured by bench/simulator-headroom.sh.
            #expect(result.completed > 0)
            #expect(result.non2xx == 0)
            #expect(result.failedConnections == 0)
        }
    }
}
