import Foundation
import GatewayAudit
import GatewayPostgres
import GatewayTestSupport
import NIOConcurrencyHelpers
import Testing

/// kill -9 under load: every call whose response a client received has both audit records, and the chain
/// verifies; the restarted gateway continues the same chain. The gateway runs as its own process (the built
/// `klarna-gateway serve`), on the harness's store, against the harness's simulator.
@Suite("Crash safety")
struct CrashTests {
    @Test("kill -9 under concurrent load loses no record of an answered call", .timeLimit(.minutes(3)))
    func killUnderLoad() async throws {
        try await killRounds(connections: 6, rounds: 3)
    }

    /// The benchmark's load (64 connections): each event loop hands the writer batches of many records, and a
    /// kill lands while several such batches are between the loops, the writer and the store.
    @Test("kill -9 under the benchmark's load (64 connections) loses no record of an answered call", .timeLimit(.minutes(4)))
    func killUnderBenchmarkLoad() async throws {
        try await killRounds(connections: 64, rounds: 2)
    }

    /// The same with the trail in PostgreSQL: a kill lands while a batch is sent and unanswered, and it may neither
    /// leave a gap in the chain nor lose an answered call's record.
    @Test(
        "kill -9 under the benchmark's load with the trail in PostgreSQL loses no record of an answered call",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"),
        .timeLimit(.minutes(4)))
    func killUnderBenchmarkLoadWithPostgreSQL() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let url = try await PostgresStore.createDatabase(named: TestPostgres.databaseName("kgw_crash_"), on: server)
        try await killRounds(connections: 64, rounds: 2, auditPath: url)
    }

    /// `rounds` times: serve, load with `connections` clients, kill -9 once calls flow; then every answered call
    /// has its intent and its outcome, and after a clean restart the whole chain verifies.
    private func killRounds(connections: Int, rounds: Int, auditPath: String? = nil) async throws {
        try await withGateway { gw in
            let auditPath = auditPath ?? gw.directory.appendingPathComponent("crash-audit.sqlite").path
            let environment = ["KGW_AUDIT__PATH": auditPath, "KGW_NODE_ID": "crash-node"]
            var answered: [String] = []
            for round in 0..<rounds {
                let child = try ChildProcess(ChildProcess.productPath("klarna-gateway"), ["serve", "--config", gw.configPath], environment: environment, directory: gw.directory)
                try await child.waitForOutput("klarna-gateway serving")
                let port = try #require(child.stdout.split(separator: " ").first { $0.hasPrefix("loopback=") }.flatMap { Int($0.dropFirst(9).trimmingCharacters(in: .whitespacesAndNewlines)) })
                let acked = NIOLockedValueBox<[String]>([])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<connections {
                        group.addTask {
                            let client = TestHTTPClient(port: port, tls: nil)
                            while true {
                                guard let response = try? await client.send(
                                    "GET", "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1",
                                    headers: [gw.bearer("checkout")]) else { break }
                                if response.status == 200, let id = response.header("Klarna-Gateway-Request-Id") {
                                    acked.withLockedValue { $0.append(id) }
                                }
                            }
                            try? await client.close()
                        }
                    }
                    // Kill only once calls are flowing (however slow the machine), at a different point each round.
                    let deadline = ContinuousClock.now + .seconds(60)
                    while acked.withLockedValue({ $0.count }) < 20 * (round + 1) && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    child.kill(SIGKILL)
                    try await group.waitForAll()
                }
                _ = try await child.wait()
                let ids = acked.withLockedValue { $0 }
                #expect(ids.count > 5, "round \(round): only \(ids.count) calls were answered before the kill")
                answered += ids
            }
            // Every answered call of every round has its intent and its outcome.
            let phases = try CrashTests.phases(auditPath)
            for id in answered {
                #expect(phases[id] == ["intent", "outcome"], "request \(id) was answered but its records are \(phases[id] ?? [])")
            }
            // A clean restart continues the same chain, and the whole chain verifies.
            let child = try ChildProcess(ChildProcess.productPath("klarna-gateway"), ["serve", "--config", gw.configPath], environment: environment, directory: gw.directory)
            try await child.waitForOutput("klarna-gateway serving")
            child.kill(SIGTERM)
            #expect(try await child.wait() == 0)
            let report = try AuditVerifier.verify(path: auditPath)
            #expect(report.isIntact, "audit verify after \(rounds) kills: \(report)")
            for secret in gw.plantedSecrets { #expect(!child.stdout.contains(secret) && !child.stderr.contains(secret)) }
        }
    }

    /// Each request's record phases in chain order, from a SQLite file or a PostgreSQL trail (`AuditReader.page`
    /// reads both).
    static func phases(_ path: String) throws -> [String: [String]] {
        var phases: [String: [String]] = [:]
        var cursor: AuditCursor?
        repeat {
            let page = try AuditReader.page(path: path, filter: AuditFilter(), after: cursor, limit: 5_000)
            for entry in page.entries { phases[entry.requestID, default: []].append(entry.phase) }
            cursor = page.next
        } while cursor != nil
        return phases
    }
}
