import Foundation
import GatewayTestSupport
import NIOConcurrencyHelpers
import Testing

/// The built `klarna-gateway serve` as a child process on a harness's store and simulator, with its own audit
/// file and an admin listener on a free port.
struct ServedGateway {
    let child: ChildProcess
    let ports: [String: Int]
    let auditPath: String

    var loopbackPort: Int { ports["loopback"] ?? 0 }
    var adminPort: Int { ports["admin"] ?? 0 }

    /// Starts the binary and waits for its "serving" line.
    static func start(_ gw: GatewayHarness, environment extra: [String: String] = [:]) async throws -> ServedGateway {
        try await start(configPath: gw.configPath, directory: gw.directory, environment: extra)
    }

    /// Starts the binary on any config (another store, another node id through `KGW_NODE_ID` in `extra`).
    static func start(configPath: String, directory: URL, environment extra: [String: String] = [:]) async throws -> ServedGateway {
        let auditPath = directory.appendingPathComponent("served-\(UUID().uuidString.prefix(6)).sqlite").path
        var environment = ["KGW_AUDIT__PATH": auditPath, "KGW_NODE_ID": "served-node", "KGW_ADMIN__ADDRESS": "127.0.0.1", "KGW_ADMIN__PORT": "0"]
        environment.merge(extra) { _, new in new }
        let child = try ChildProcess(
            ChildProcess.productPath("klarna-gateway"), ["serve", "--config", configPath], environment: environment, directory: directory)
        do {
            try await child.waitForOutput("klarna-gateway serving")
        } catch {
            child.kill(SIGKILL)
            throw error
        }
        let line = child.stdout.split(separator: "\n").first { $0.hasPrefix("klarna-gateway serving") } ?? ""
        var ports: [String: Int] = [:]
        for field in line.split(separator: " ") {
            let parts = field.split(separator: "=")
            if parts.count == 2, let port = Int(parts[1]) { ports[String(parts[0])] = port }
        }
        return ServedGateway(child: child, ports: ports, auditPath: auditPath)
    }

    /// The `/metrics` text.
    func metrics() async throws -> String {
        let client = TestHTTPClient(port: adminPort, tls: nil)
        defer { Task { try? await client.close() } }
        let response = try await client.send("GET", "/metrics")
        #expect(response.status == 200)
        return response.text
    }

    /// Waits until standard error holds `text` at least `count` times.
    func waitForLog(_ text: String, count: Int = 1, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while child.stderr.components(separatedBy: text).count - 1 < count {
            guard ContinuousClock.now < deadline else {
                throw WaitTimeout(what: "\(count)× '\(text)' in the gateway's log:\n\(child.stderr.suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Stops with SIGTERM and returns the exit status.
    func stop() async throws -> Int32 {
        child.kill(SIGTERM)
        return try await child.wait(timeout: .seconds(90))
    }
}

/// A condition a test waited for did not come.
struct WaitTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Waits (generously) until `condition` holds.
func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimeout(what: what) }
        try await Task.sleep(for: .milliseconds(25))
    }
}

/// Clients calling the gateway in a loop until stopped, remembering every answer and every failure.
final class LoadClients: Sendable {
    struct Outcome: Sendable {
        var answered: [String] = []
        var answeredAfterStop = 0
        var failures: [(key: String, error: String)] = []
        var statuses: [Int: Int] = [:]
    }

    let outcome = NIOLockedValueBox(Outcome())
    let stopFlag = NIOLockedValueBox(false)
    let signalled = NIOLockedValueBox(false)

    var answeredCount: Int { outcome.withLockedValue { $0.answered.count } }

    /// Runs `clients` loops of `request` until `stop()`, or until a loop's call throws and `untilError` is set.
    func run(
        clients: Int, untilError: Bool, makeClient: @escaping @Sendable () -> TestHTTPClient,
        request: @escaping @Sendable (TestHTTPClient, String) async throws -> TestHTTPResponse
    ) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<clients {
                    group.addTask {
                        let client = makeClient()
                        while !self.stopFlag.withLockedValue({ $0 }) {
                            let key = UUID().uuidString.lowercased()
                            do {
                                let response = try await request(client, key)
                                let after = self.signalled.withLockedValue { $0 }
                                self.outcome.withLockedValue {
                                    $0.statuses[response.status, default: 0] += 1
                                    if response.status == 200, let id = response.header("Klarna-Gateway-Request-Id") {
                                        $0.answered.append(id)
                                        if after { $0.answeredAfterStop += 1 }
                                    } else {
                                        $0.failures.append((key, "status \(response.status): \(response.text.prefix(200))"))
                                    }
                                }
                            } catch {
                                self.outcome.withLockedValue { $0.failures.append((key, "\(error)")) }
                                if untilError { break }
                                try? await Task.sleep(for: .milliseconds(10))
                            }
                        }
                        try? await client.close()
                    }
                }
            }
        }
    }

    func stop() { stopFlag.withLockedValue { $0 = true } }
}
