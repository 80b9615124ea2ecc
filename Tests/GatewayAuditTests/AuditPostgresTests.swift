import Foundation
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import Logging
import NIOCore
import PostgresNIO
import Testing

@testable import GatewayAudit

/// The audit trail in a shared PostgreSQL database: one chain per node, verified chain by chain, exported merged
/// by time, with the same tamper evidence as the SQLite trail. Each test gets its own database on the server
/// bin/with-postgres starts.
@Suite struct AuditPostgresTests {
    static var serverURL: String? { TestPostgres.serverURL }
    static var required: Bool { TestPostgres.required }

    /// A new database for one test.
    static func database() async throws -> String {
        guard let server = serverURL else {
            throw AuditError.io("KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        }
        return try await PostgresStore.createDatabase(named: TestPostgres.databaseName("kgw_audit_"), on: server)
    }

    /// Runs statements on the database as an intruder with write access would.
    static func tamper(_ url: String, _ statements: String...) async throws {
        let logger = Logger(label: "tamper", factory: { _ in SwiftLogNoOpLogHandler() })
        let connection = try await PostgresConnection.connect(
            on: PostgresClient.defaultEventLoopGroup.next(), configuration: try PostgresURL(url).connectionConfiguration(), id: 9,
            logger: logger)
        do {
            for sql in statements { _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
        } catch {
            try await connection.close()
            throw error
        }
        try await connection.close()
    }

    static func writer(_ url: String, node: String, checkpointFile: String? = nil, checkpointEvery: Int = 10) -> AuditWriter {
        AuditWriter(
            path: url, nodeID: node, signer: Fixtures.signer, checkpointEveryRecords: checkpointEvery, checkpointEverySeconds: 3600,
            checkpointFile: checkpointFile, retryWindow: 0)
    }

    /// A server that stops answering while the connection stays up (a relay that passes nothing on): the writer's
    /// blocking wait ends at its deadline with an error that says so, and the connection, whose state is then
    /// unknown, is closed, so the next statement is refused at once instead of waiting again.
    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"), .timeLimit(.minutes(2)))
    func aServerThatStopsAnsweringEndsTheWaitAtItsDeadlineAndClosesTheConnection() async throws {
        try await Self.expectDeadline { connection, logger, timeout in
            _ = try connection.blockingQuery("SELECT 1", logger: logger, timeout: timeout)
        }
    }

    /// The same for a prepared statement, which the writer's inserts are (run by a task, not a future).
    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"), .timeLimit(.minutes(2)))
    func aPreparedStatementToASilentServerEndsAtItsDeadlineToo() async throws {
        try await Self.expectDeadline { connection, logger, timeout in
            try connection.blockingExecute(SelectNothing(), logger: logger, timeout: timeout)
        }
    }

    /// The writer's prepared statements never wait for Swift's cooperative pool: with every thread of the pool held
    /// by other work, a statement is still answered well within its deadline. (Resumed on the pool, as the writer's
    /// task once was, its answer waited unread until the deadline closed the connection, as CI once saw under load.)
    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"), .timeLimit(.minutes(1)))
    func aPreparedStatementIsAnsweredWhileTheCooperativePoolIsBusy() async throws {
        let url = try PostgresURL(try await Self.database())
        let logger = Logger(label: "busy-pool", factory: { _ in SwiftLogNoOpLogHandler() })
        let connection = try await Self.onThread { try PostgresConnection.blockingConnect(url, id: 8, logger: logger) }
        try await Self.onThread { try connection.blockingExecute(SelectNothing(), logger: logger) }
        // All on a thread of its own: while the pool is held, no task of this test could run either.
        let outcome: String? = await Self.onThread {
            let width = ProcessInfo.processInfo.activeProcessorCount
            let started = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            for _ in 0..<width {
                Task.detached {
                    started.signal()
                    release.wait()
                }
            }
            for _ in 0..<width { started.wait() }
            defer { for _ in 0..<width { release.signal() } }
            // Generous for a loaded machine: an answer left for the held pool to read stays unread however long.
            do {
                try connection.blockingExecute(SelectNothing(), logger: logger, timeout: .seconds(30))
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome == nil, "\(outcome ?? "")")
        try await connection.close()
    }

    /// A batch that commits but whose answer is lost on the way (the relay drops the server's answers) is found in
    /// the store when the writer reopens: its calls are told it was written, and its records are not written a
    /// second time under new sequence numbers.
    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"), .timeLimit(.minutes(3)))
    func aBatchWhoseAnswerWasLostIsNotWrittenTwice() async throws {
        let (database, relay, relayed) = try await Self.relayedDatabase()
        let writer = AuditWriter(
            path: relayed, nodeID: "lost", signer: Fixtures.signer, checkpointEveryRecords: 1_000, checkpointEverySeconds: 3600,
            retryWindow: 10, statementTimeout: 1)
        try await writer.record(Fixtures.record(1), on: Fixtures.loop).get()
        relay.muteAnswers()
        let second = writer.record(Fixtures.record(2), on: Fixtures.loop)
        // Restored once the record has landed, read past the relay: the answer it dropped is lost for good.
        var landed = 0
        for _ in 0..<100 where landed < 2 {
            try await Task.sleep(for: .milliseconds(50))
            landed = try await Self.records(database)
        }
        #expect(landed == 2)
        relay.restore()
        try await second.get()
        try await writer.record(Fixtures.record(3), on: Fixtures.loop).get()
        #expect(writer.health.isHealthy)
        #expect(writer.health.lastSeq == 3)
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: database, publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 3)
        #expect(try Self.requestIDs(database) == ["req-1", "req-2", "req-3"])
        await relay.close()
    }

    /// In `async` mode a failed batch is retried with the batches queued meanwhile: when its answer was lost after
    /// it landed and the next statement fails too, the landed records stay out of the backlog for good.
    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"), .timeLimit(.minutes(3)))
    func aLandedBacklogIsNotWrittenAgainAfterASecondFailure() async throws {
        let (database, relay, relayed) = try await Self.relayedDatabase()
        let writer = AuditWriter(
            path: relayed, nodeID: "backlog", mode: .async, signer: Fixtures.signer, checkpointEveryRecords: 1_000,
            checkpointEverySeconds: 3600, retryWindow: 0, statementTimeout: 3)
        try await writer.record(Fixtures.record(1), on: Fixtures.loop).get()
        for _ in 0..<100 where try await Self.records(database) < 1 { try await Task.sleep(for: .milliseconds(50)) }
        // Record 2 lands but its answer is lost; record 3 queues meanwhile, and the server refuses it once.
        relay.muteAnswers()
        try await writer.record(Fixtures.record(2), on: Fixtures.loop).get()
        for _ in 0..<100 where try await Self.records(database) < 2 { try await Task.sleep(for: .milliseconds(50)) }
        try await Self.tamper(database, """
            CREATE FUNCTION kgw_refuse_req3() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.request_id = 'req-3' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$
            """, "CREATE TRIGGER kgw_refuse_req3 BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION kgw_refuse_req3()")
        try await writer.record(Fixtures.record(3), on: Fixtures.loop).get()
        for _ in 0..<200 where !(writer.health.lastError ?? "").contains("refused for the test") {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(writer.health.lastError?.contains("refused for the test") == true, "\(writer.health)")
        try await Self.tamper(database, "DROP TRIGGER kgw_refuse_req3 ON audit_records")
        for _ in 0..<200 where !writer.health.isHealthy { try await Task.sleep(for: .milliseconds(50)) }
        #expect(writer.health.isHealthy, "\(writer.health)")
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: database, publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(try Self.requestIDs(database) == ["req-1", "req-2", "req-3"])
        await relay.close()
    }

    /// A new database, and a relay in front of its server with the database's URL through it.
    static func relayedDatabase() async throws -> (database: String, relay: TCPRelay, relayed: String) {
        let database = try await database()
        let direct = try PostgresURL(database)
        let relay = try await TCPRelay.start(to: direct.host ?? "127.0.0.1", port: direct.port)
        let relayed = database.replacingOccurrences(of: ":\(direct.port)/", with: ":\(relay.port)/")
        #expect(relayed != database)
        return (database, relay, relayed)
    }

    /// The request ids of the trail's records, as its export lists them.
    static func requestIDs(_ url: String) throws -> [String] {
        let dir = try TempDir()
        let output = try AuditOutput(path: dir.path("export.jsonl"))
        try AuditReader.export(path: url, filter: AuditFilter(), format: .jsonl, to: output)
        try output.close()
        return try String(contentsOfFile: dir.path("export.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { AuditEntry(jsonLine: $0)?.requestID }
    }

    /// How many records the trail at `url` holds, verified; read off the cooperative pool, which the writer's
    /// statements need free to finish.
    static func records(_ url: String) async throws -> Int {
        try await onThread { try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys).recordsChecked }
    }

    /// A prepared statement without rows, as the writer's inserts are.
    struct SelectNothing: PostgresPreparedStatement {
        static let name = "kgw_test_select_nothing"
        static let sql = "SELECT 1 WHERE false"
        typealias Row = ()
        func makeBindings() -> PostgresBindings { PostgresBindings() }
        func decodeRow(_ row: PostgresRow) throws -> Row {}
    }

    /// Runs `statement` once answered, then with the relay silenced: it must fail at its one-second deadline, the
    /// connection must be closed, and the next statement refused at once. `statement` waits as long as it is given.
    static func expectDeadline(_ statement: @escaping @Sendable (PostgresConnection, Logger, TimeAmount) throws -> Void) async throws {
        var url = try PostgresURL(try await Self.database())
        let relay = try await TCPRelay.start(to: url.host ?? "127.0.0.1", port: url.port)
        url.host = "127.0.0.1"
        url.port = relay.port
        let logger = Logger(label: "silent-server", factory: { _ in SwiftLogNoOpLogHandler() })
        let relayed = url
        let connection = try await Self.onThread { try PostgresConnection.blockingConnect(relayed, id: 7, logger: logger) }
        try await Self.onThread {
            try AuditPostgresSchema.migrate(connection, logger: logger)
            let rows = try connection.blockingQuery("SELECT count(*) FROM audit_records", logger: logger)
            #expect(try rows.first?.decode(Int64.self) == 0)
        }
        // What the statement ends with, given `timeout`: nil when answered, else its error's text.
        let run: @Sendable (TimeAmount) -> String? = { timeout in
            do {
                try statement(connection, logger, timeout)
                return nil
            } catch {
                return "\(error)"
            }
        }
        // Answered while the relay passes everything: one second is too short a wait on a loaded machine.
        let answered = await Self.onThread { run(.seconds(30)) }
        #expect(answered == nil, "\(answered ?? "")")
        relay.silence()
        let failure = await Self.onThread { run(.seconds(1)) }
        #expect(failure?.contains("PostgreSQL did not answer within 1 s") == true, "\(failure ?? "answered")")
        // Polled, not awaited on `closeFuture`: a connection left open must fail this test, not hang the run.
        for _ in 0..<300 where !connection.isClosed { try await Task.sleep(for: .milliseconds(100)) }
        #expect(connection.isClosed, "the connection whose statement timed out was left open")
        let again = await Self.onThread { run(.seconds(1)) }
        #expect(again?.contains("closed") == true, "\(again ?? "answered")")
        await relay.close()
    }

    /// Runs blocking work on a thread of its own, as the audit writer does, not on one of the test's task threads.
    static func onThread<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// `onThread` for work that cannot throw.
    static func onThread<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in Thread { continuation.resume(returning: work()) }.start() }
    }

    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"))
    func twoNodesAppendTheirOwnChainsAndVerifyAndExportMergesThemByTime() async throws {
        let url = try await Self.database()
        let a = Self.writer(url, node: "gw-a")
        let b = Self.writer(url, node: "gw-b")
        // Interleaved in time: a has even microseconds, b odd, written concurrently.
        async let wroteA: Void = {
            for index in 0..<40 { try await a.record(Fixtures.record(index, timeMicros: 1_800_000_000_000_000 + Int64(index * 2)), on: Fixtures.loop).get() }
        }()
        async let wroteB: Void = {
            for index in 0..<35 { try await b.record(Fixtures.record(index, timeMicros: 1_800_000_000_000_001 + Int64(index * 2)), on: Fixtures.loop).get() }
        }()
        _ = try await (wroteA, wroteB)
        await a.shutdown()
        await b.shutdown()

        let report = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.chains.map(\.nodeID) == ["gw-a", "gw-b"])
        #expect(report.chains.map(\.lastSeq) == [40, 35])
        #expect(report.chains.map(\.newestCheckpointSeq) == [40, 35], "shutdown signs a final checkpoint per chain")
        #expect(report.recordsChecked == 75)

        let dir = try TempDir()
        let output = try AuditOutput(path: dir.path("export.jsonl"))
        let exported = try AuditReader.export(path: url, filter: AuditFilter(), format: .jsonl, to: output)
        try output.close()
        #expect(exported == 75)
        let lines = try String(contentsOfFile: dir.path("export.jsonl"), encoding: .utf8).split(separator: "\n")
        let entries = lines.compactMap { AuditEntry(jsonLine: $0) }
        #expect(entries.count == 75)
        #expect(entries.map(\.timeMicros) == entries.map(\.timeMicros).sorted(), "merged by time")
        #expect(entries.prefix(4).map(\.nodeID) == ["gw-a", "gw-b", "gw-a", "gw-b"])

        let stats = try AuditReader.stats(path: url, filter: AuditFilter(merchantID: "merchant-0"))
        #expect(stats.calls == 20 + 18)

        // tail: the newest records of all chains, by time.
        let tailed = try AuditOutput(path: dir.path("tail.jsonl"))
        try await AuditReader.tail(path: url, count: 3, follow: false, to: tailed)
        try tailed.close()
        let tail = try String(contentsOfFile: dir.path("tail.jsonl"), encoding: .utf8).split(separator: "\n").compactMap { AuditEntry(jsonLine: $0) }
        #expect(tail.map(\.timeMicros) == Array(entries.map(\.timeMicros).suffix(3)))
    }

    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"))
    func tamperingInOneChainIsNamedByNodeAndFirstBadSequence() async throws {
        let url = try await Self.database()
        let dir = try TempDir()
        for node in ["gw-a", "gw-b", "gw-c"] {
            let writer = Self.writer(url, node: node, checkpointFile: dir.path("\(node).jsonl"))
            try await Fixtures.write(writer, count: 30)
            await writer.shutdown()
        }
        #expect(try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys).isIntact)

        try await Self.tamper(url, "UPDATE audit_records SET status = 201 WHERE node_id = 'gw-b' AND seq = 12")
        try await Self.tamper(url, "DELETE FROM audit_records WHERE node_id = 'gw-c' AND seq = 7")
        var report = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
        #expect(!report.isIntact)
        #expect(report.chains.map(\.problemCount).map { $0 > 0 } == [false, true, true])
        let b = report.problems.first { $0.nodeID == "gw-b" }
        #expect(b?.kind == .edited && b?.seq == 12)
        let c = report.problems.first { $0.nodeID == "gw-c" }
        #expect(c?.kind == .deleted && c?.seq == 7)

        // A whole chain removed, records and checkpoints: only the shipped checkpoint file can tell.
        try await Self.tamper(url, "DELETE FROM audit_records WHERE node_id = 'gw-a'", "DELETE FROM audit_checkpoints WHERE node_id = 'gw-a'")
        report = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
        #expect(!report.chains.contains { $0.nodeID == "gw-a" }, "the store alone no longer knows gw-a")
        report = try AuditVerifier.verify(
            path: url, trustedCheckpointFiles: ["gw-a", "gw-b", "gw-c"].map { URL(fileURLWithPath: dir.path("\($0).jsonl")) },
            publicKeys: Fixtures.trustedKeys)
        let a = report.problems.first { $0.nodeID == "gw-a" }
        #expect(a?.kind == .truncated && a?.seq == 1, "\(report.problems)")
    }

    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"))
    func aRestartedWriterContinuesItsChainAndASecondWriterForTheSameNodeIsRefused() async throws {
        let url = try await Self.database()
        let first = Self.writer(url, node: "gw-a")
        try await Fixtures.write(first, count: 5)
        let twin = Self.writer(url, node: "gw-a")
        await #expect(throws: AuditError.self) { try await twin.record(Fixtures.record(99), on: Fixtures.loop).get() }
        #expect(twin.health.lastError?.contains("another gateway is writing the audit chain of node gw-a") == true)
        await twin.shutdown()
        await first.shutdown()

        let restarted = Self.writer(url, node: "gw-a")
        try await Fixtures.write(restarted, count: 5, start: 6)
        await restarted.shutdown()
        let report = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.chains.map(\.lastSeq) == [10])
    }

    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"))
    func anUnreachableServerFailsCallsAndNamesTheServerWithoutItsPassword() async throws {
        let writer = AuditWriter(
            path: "postgres://kgw:PLANTEDPGPASSWORD@127.0.0.1:1/kgw", nodeID: "gw-a", signer: Fixtures.signer, retryWindow: 0.3)
        await #expect(throws: AuditError.self) { try await writer.record(Fixtures.record(1), on: Fixtures.loop).get() }
        let health = writer.health
        #expect(!health.isHealthy)
        #expect(health.lastError?.contains("127.0.0.1") == true)
        #expect(health.lastError?.contains("PLANTEDPGPASSWORD") == false)
        await writer.shutdown()
    }

    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"))
    func anEmbeddedNodesChainIsCopiedIntoPostgreSQLAndStillVerifiesAgainstItsShippedCheckpoints() async throws {
        let dir = try TempDir()
        let file = try await Fixtures.store(dir, count: 57, checkpointEvery: 10)
        let url = try await Self.database()
        let other = Self.writer(url, node: "gw-b")
        try await Fixtures.write(other, count: 3)
        await other.shutdown()

        let report = try AuditCopy.copy(from: file, to: url)
        #expect(report == AuditCopy.Report(nodeID: "node-1", records: 57, checkpoints: 6, lastSeq: 57))
        let verified = try AuditVerifier.verify(
            path: url, trustedCheckpointFiles: [URL(fileURLWithPath: dir.path("checkpoints.jsonl"))], publicKeys: Fixtures.trustedKeys)
        #expect(verified.isIntact, "\(verified.problems)")
        #expect(verified.chains.map(\.nodeID) == ["gw-b", "node-1"])
        #expect(verified.chains.map(\.newestCheckpointSeq) == [3, 57])
        #expect(throws: AuditError.self) { try AuditCopy.copy(from: file, to: url) }

        // The copied chain goes on where it stopped when that node is started against PostgreSQL.
        let moved = AuditWriter(path: url, nodeID: "node-1", signer: Fixtures.signer, retryWindow: 0)
        try await Fixtures.write(moved, count: 2, start: 58)
        await moved.shutdown()
        let after = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
        #expect(after.isIntact && after.chains.last?.lastSeq == 59)
    }

    /// The server crashes under a writer: a restart within `retry_seconds` holds the calls instead of failing them;
    /// a longer outage fails calls (the audit rule) and the writer recovers by itself, with no gap in the chain.
    @Test(.enabled(if: serverURL != nil || required, "needs PostgreSQL: run under bin/with-postgres"))
    func aServerCrashIsRiddenOutWithinTheRetryWindowAndRecoveredFromAfterIt() async throws {
        let cluster = try await PostgresCluster.start()
        do {
            let url = cluster.url()
            let writer = AuditWriter(
                path: url, nodeID: "gw-a", signer: Fixtures.signer, checkpointEveryRecords: 1_000, checkpointEverySeconds: 3600,
                retryWindow: 20)
            try await Fixtures.write(writer, count: 10)

            // A short outage: the record waits for the restarted server and is acknowledged once written.
            try await cluster.crash()
            let held = writer.record(Fixtures.record(11), on: Fixtures.loop)
            try await Task.sleep(for: .milliseconds(500))
            try await cluster.start()
            try await held.get()
            #expect(writer.health.isHealthy)

            // A long outage: past the window the call is refused, then the next ones at once.
            let short = AuditWriter(path: url, nodeID: "gw-b", signer: Fixtures.signer, retryWindow: 0.5)
            try await Fixtures.write(short, count: 3)
            try await cluster.crash()
            await #expect(throws: AuditError.self) { try await short.record(Fixtures.record(4), on: Fixtures.loop).get() }
            await #expect(throws: AuditError.self) { try await short.record(Fixtures.record(5), on: Fixtures.loop).get() }
            #expect(!short.health.isHealthy)
            try await cluster.start()
            // Health comes back without a call (the worker probes), as a readiness probe needs.
            let deadline = ContinuousClock.now + .seconds(60)
            while !short.health.isHealthy, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(short.health.isHealthy)
            try await short.record(Fixtures.record(6), on: Fixtures.loop).get()
            await short.shutdown()
            await writer.shutdown()

            let report = try AuditVerifier.verify(path: url, publicKeys: Fixtures.trustedKeys)
            #expect(report.isIntact, "\(report.problems)")
            #expect(report.chains.map(\.lastSeq) == [11, 4], "refused records are not in the chain; acknowledged ones all are")
        } catch {
            Issue.record("\(error)\n\(cluster.log)")
        }
        await cluster.destroy()
    }
}
