import Foundation
import GatewayCore
import GatewayTestSupport
import GRDB
import KlarnaSimulator
import NIOConcurrencyHelpers
import NIOPosix
import Testing

/// The built `klarna-gateway serve` binary as its own process, on a harness's store and in front of its simulator,
/// so that its memory is measured alone (the test process also holds the simulator and the clients). Settings
/// come in as `KGW_…` environment overrides.
final class FaultGateway: Sendable {
    let gw: GatewayHarness
    let child: ChildProcess
    /// The plain loopback listener.
    let port: Int
    let adminPort: Int
    let auditPath: String

    static func start(_ gw: GatewayHarness, settings: [String: String]) async throws -> FaultGateway {
        let auditPath = gw.directory.appendingPathComponent("fault-audit-\(UUID().uuidString.prefix(6)).sqlite").path
        let adminPort = try await freePort()
        var environment = [
            "KGW_AUDIT__PATH": auditPath, "KGW_NODE_ID": "fault-node", "KGW_LOG_LEVEL": "warning",
            "KGW_ADMIN__ADDRESS": "127.0.0.1", "KGW_ADMIN__PORT": "\(adminPort)",
        ]
        environment.merge(settings) { $1 }
        let child = try ChildProcess(
            ChildProcess.productPath("klarna-gateway"), ["serve", "--config", gw.configPath], environment: environment, directory: gw.directory)
        try await child.waitForOutput("klarna-gateway serving")
        let field = child.stdout.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("loopback=") }
        let port = try #require(field.flatMap { Int($0.dropFirst(9)) }, "no loopback port in: \(child.stdout)")
        return FaultGateway(gw: gw, child: child, port: port, adminPort: adminPort, auditPath: auditPath)
    }

    private init(gw: GatewayHarness, child: ChildProcess, port: Int, adminPort: Int, auditPath: String) {
        self.gw = gw
        self.child = child
        self.port = port
        self.adminPort = adminPort
        self.auditPath = auditPath
    }

    /// A port nothing listens on (bound once, then released).
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    func client() -> TestHTTPClient { TestHTTPClient(port: port, tls: nil) }

    /// The gateway process's resident memory, kilobytes.
    var residentKB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(child.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(whereSeparator: \.isWhitespace).dropFirst().first ?? "") ?? 0
    }

    /// Waits (generously) for resident memory to come back within `slackKB` of `baselineKB`; returns the last reading.
    func settledMemory(baselineKB: Int, slackKB: Int) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        var reading = residentKB
        while reading > baselineKB + slackKB && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            reading = residentKB
        }
        return reading
    }

    /// `/readyz` as JSON.
    func readiness() async throws -> JSONValue {
        let admin = TestHTTPClient(port: adminPort, tls: nil)
        let response = try await admin.send("GET", "/readyz")
        try? await admin.close()
        return response.json
    }

    /// `upstream_attempts` of the last record (outcome or refusal) of a call in this gateway's audit trail.
    func attempts(requestID: String) throws -> Int? { try upstreamAttempts(auditPath: auditPath, requestID: requestID) }

    /// Whether the process is still running.
    var isRunning: Bool { child.process.isRunning }

    func stop() async {
        child.kill(SIGTERM)
        _ = try? await child.wait()
    }
}

/// `upstream_attempts` of the last record (outcome or refusal) of a call in the audit trail at `auditPath`.
func upstreamAttempts(auditPath: String, requestID: String) throws -> Int? {
    try DatabaseQueue(path: auditPath).read { db in
        try Int.fetchOne(db, sql: "SELECT upstream_attempts FROM audit_records WHERE request_id = ? AND phase != 'intent' ORDER BY seq DESC LIMIT 1", arguments: [requestID])
    }
}

/// Runs `body` against a harness and a gateway process with `settings`, and always stops both.
func withFaultGateway(
    settings: [String: String], configure: (GatewayHarness) async throws -> [String: String] = { _ in [:] },
    _ body: (FaultGateway) async throws -> Void
) async throws {
    try await withGateway { gw in
        let extra = try await configure(gw)
        let fx = try await FaultGateway.start(gw, settings: settings.merging(extra) { $1 })
        do {
            try await body(fx)
        } catch {
            await fx.stop()
            throw error
        }
        #expect(fx.isRunning, "the gateway process died during the test: \(fx.child.stderr.suffix(2000))")
        await fx.stop()
    }
}

/// One call's result as the caller saw it.
struct CallResult: Sendable {
    var status: Int
    var code: String?
    var message: String?
    var requestID: String?
    var gatewayKey: String?
    var retryAfter: String?
    var failed: Bool = false
}

/// Runs `count` calls over `concurrency` connections; `request(i)` gives each call's method, path, headers, body.
func runLoad(
    _ fx: FaultGateway, count: Int, concurrency: Int = 6,
    request: @escaping @Sendable (Int) -> (String, String, [(String, String)], [UInt8]?)
) async -> [CallResult] {
    let results = NIOLockedValueBox<[CallResult]>([])
    let next = NIOLockedValueBox(0)
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                let client = fx.client()
                while true {
                    let index = next.withLockedValue { value -> Int in
                        defer { value += 1 }
                        return value
                    }
                    guard index < count else { break }
                    let (method, path, headers, body) = request(index)
                    do {
                        let response = try await client.send(method, path, headers: headers, body: body)
                        let json = response.json
                        results.withLockedValue {
                            $0.append(CallResult(
                                status: response.status, code: json["error_code"]?.stringValue, message: json["error_message"]?.stringValue,
                                requestID: response.header("Klarna-Gateway-Request-Id"), gatewayKey: response.header("Klarna-Gateway-Idempotency-Key"),
                                retryAfter: response.header("Retry-After")))
                        }
                    } catch {
                        results.withLockedValue { $0.append(CallResult(status: 0, failed: true)) }
                    }
                }
                try? await client.close()
            }
        }
    }
    return results.withLockedValue { $0 }
}

extension GatewayHarness {
    /// Adds a fault rule to the simulator.
    func inject(_ rule: String) async throws {
        let response = try await control.send("POST", "/control/faults", headers: [("Content-Type", "application/json")], body: Array(rule.utf8))
        #expect(response.status == 200 || response.status == 201, "fault rule refused: \(String(decoding: response.body, as: UTF8.self))")
    }

    /// Removes every fault rule.
    func clearFaults() async throws { _ = try await control.send("DELETE", "/control/faults") }
}

/// Calls the tests make.
enum FaultCalls {
    static let transaction = "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1"
    static let paymentRequests = "/v2/accounts/m1/payment/requests"

    /// A payment request body, unique by `reference`, padded to about `size` bytes so a leak of bodies shows in memory.
    static func paymentRequest(_ reference: String, size: Int = 0) -> [UInt8] {
        let padding = String(repeating: "x", count: max(0, size - 80))
        return Array(#"{"currency":"EUR","amount":1000,"reference":"\#(reference)","description":"\#(padding)"}"#.utf8)
    }

    /// The POSTs the simulator received, with the idempotency key each carried and its body hash.
    static func receivedPosts(_ gw: GatewayHarness) async throws -> [(key: String?, body: String)] {
        try await gw.received().filter { $0["method"]?.stringValue == "POST" }.map { entry in
            (entry["headers"]?["Klarna-Idempotency-Key"]?.stringValue, entry["body_sha256"]?.stringValue ?? "")
        }
    }

    /// The simulator never received the same key-less POST twice, and a key is only ever repeated with the same body.
    static func expectNoUnsafeRepeats(_ gw: GatewayHarness, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let posts = try await receivedPosts(gw)
        let keyless = posts.filter { $0.key == nil }.map(\.body)
        #expect(Set(keyless).count == keyless.count, "a POST without an idempotency key reached the simulator twice", sourceLocation: sourceLocation)
        var bodies: [String: String] = [:]
        for post in posts {
            guard let key = post.key else { continue }
            if let earlier = bodies[key] {
                #expect(earlier == post.body, "key \(key) was sent with two different bodies", sourceLocation: sourceLocation)
            }
            bodies[key] = post.body
        }
    }
}
