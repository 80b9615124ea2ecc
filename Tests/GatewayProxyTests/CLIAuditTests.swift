import Foundation
import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import GRDB
import Testing

/// Changes made with the CLI binary are recorded as admin records in the audit chain of the served binary
/// (docs/admin-api.md, "Audit of CLI changes"): made while it runs, made while no gateway ran, claimed by a node
/// that then crashed; the chain verifies, and no secret reaches a record or a log.
@Suite struct CLIAuditTests {
    static let rotatedKey = "klarna_test_api_PLANTEDrotatedCLIkey5e1d07"

    /// Runs the CLI binary on `configPath` as the operating-system user `user`.
    @discardableResult
    static func cli(
        _ arguments: [String], configPath: String, directory: URL, user: String, stdin: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (stdout: String, stderr: String) {
        let result = try await ChildProcess.run(
            ChildProcess.productPath("klarna-gateway"), arguments + ["--config", configPath], environment: ["USER": user, "SUDO_USER": user],
            directory: directory, stdin: stdin)
        #expect(result.status == 0, "\(arguments.joined(separator: " ")): \(result.stderr)", sourceLocation: sourceLocation)
        return (result.stdout, result.stderr)
    }

    /// A CLI change's record as the trail holds it.
    struct Recorded: Equatable {
        var requestID: String
        var caller: String
        var operation: String
        var template: String
        var method: String
        var path: String
    }

    /// The CLI changes' records in a served trail, oldest first.
    static func recorded(_ auditPath: String) throws -> [Recorded] {
        guard FileManager.default.fileExists(atPath: auditPath) else { return [] }
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: auditPath, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            guard try db.tableExists("audit_records") else { return [] }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT request_id, caller_id, operation_id, operation_template, method, path FROM audit_records
                    WHERE operation_family = 'admin' AND caller_id LIKE 'cli:%' ORDER BY seq
                    """
            ).map { Recorded(requestID: $0[0], caller: $0[1], operation: $0[2], template: $0[3], method: $0[4], path: $0[5]) }
        }
    }

    /// Waits until the trail holds a record of `operation` by `user` whose path contains `detail`.
    static func waitForRecord(_ auditPath: String, _ operation: String, by user: String, detail: String) async throws -> Recorded {
        var found: Recorded?
        try await waitUntil("the record of \(operation) by \(user) (\(detail)) in \(auditPath)") {
            // The served node may still be creating the file: a read that fails is tried again.
            found = (try? recorded(auditPath))?.first { $0.operation == operation && $0.caller == "cli:" + user && $0.path.contains(detail) }
            return found != nil
        }
        return try #require(found)
    }

    @Test("a CLI change is recorded in the served node's chain: while it runs, made before it started, and after a crash between claim and record")
    func cliChangesAreAudited() async throws {
        try await withGateway { gw in
            let store = try #require(gw.admin.store as? any AdminEventAuditing)
            @discardableResult
            func cli(_ arguments: [String], _ user: String, _ stdin: String?) async throws -> (stdout: String, stderr: String) {
                try await Self.cli(arguments, configPath: gw.configPath, directory: gw.directory, user: user, stdin: stdin)
            }
            // No gateway records while none is served: the harness's own runs no recorder.
            try await cli(["merchants", "suspend", "m3"], "ops-offline", nil)
            // A node claimed this one and crashed before recording it.
            try await cli(["merchants", "resume", "m3"], "ops-crashed", nil)
            let crashed = try #require(try await store.unclaimedAdminEvents(limit: 1000).last)
            #expect(crashed.event.action == "merchants.resume" && crashed.event.actor == "ops-crashed")
            #expect(try await store.claimAdminEvent(id: crashed.id, node: "served-node", atMicros: UTCTime.nowMicros()))
            // One claimed an hour ago by a node that never came back, which the served node takes over; one claimed just
            // now by a node still at work, which it leaves alone.
            try await cli(["merchants", "suspend", "m1"], "ops-dead", nil)
            let abandoned = try #require(try await store.unclaimedAdminEvents(limit: 1000).last)
            #expect(try await store.claimAdminEvent(id: abandoned.id, node: "dead-node", atMicros: UTCTime.nowMicros() - 3_600_000_000))
            try await cli(["merchants", "resume", "m1"], "ops-busy", nil)
            let busy = try #require(try await store.unclaimedAdminEvents(limit: 1000).last)
            #expect(busy.event.actor == "ops-busy" && abandoned.event.actor == "ops-dead")
            #expect(try await store.claimAdminEvent(id: busy.id, node: "busy-node", atMicros: UTCTime.nowMicros()))

            let served = try await ServedGateway.start(gw)
            let offline = try await Self.waitForRecord(served.auditPath, "cli.merchants.suspend", by: "ops-offline", detail: "m3")
            #expect(offline.method == "CLI" && offline.template == "klarna-gateway merchants suspend" && offline.path == "m3")
            _ = try await Self.waitForRecord(served.auditPath, "cli.merchants.resume", by: "ops-crashed", detail: "m3")
            #expect(try await store.unfinishedAdminEvents(claimedBy: "served-node").isEmpty)
            let takenOver = try await Self.waitForRecord(served.auditPath, "cli.merchants.suspend", by: "ops-dead", detail: "m1")
            #expect(takenOver.requestID == "admin-event-\(abandoned.id)")

            // Changes while it runs, secrets among them.
            let token = try await cli(["callers", "add", "audit-caller"], "ops-live", nil).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            // kgw_<16 hex digits of id>_<secret>: the id is what `callers list` shows.
            #expect(token.hasPrefix("kgw_") && token.count == 4 + 16 + 1 + 43, "\(token)")
            let tokenID = String(token.dropFirst(4).prefix(16))
            let rotated = try await cli(["callers", "rotate-token", "audit-caller"], "ops-live", nil).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try await cli(["partners", "rotate-key", "acq", "--api-key-file", "-"], "ops-live", Self.rotatedKey)
            let adminToken = try await cli(["admins", "add", "auditor", "--role", "viewer"], "ops-live", nil).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try await cli(["merchants", "remove", "m4"], "ops-live", nil)
            try await cli(["partners", "update", "acq_live", "--auth-form", "empty-user"], "ops-live", nil)
            try await cli(["merchants", "remove", "m_live"], "ops-live", nil)
            try await cli(["partners", "remove", "acq_live"], "ops-live", nil)
            let added = try await Self.waitForRecord(served.auditPath, "cli.callers.add", by: "ops-live", detail: "audit-caller")
            #expect(added.path == "audit-caller token \(tokenID) certificate -")
            _ = try await Self.waitForRecord(served.auditPath, "cli.callers.rotate-token", by: "ops-live", detail: "audit-caller")
            let rotation = try await Self.waitForRecord(served.auditPath, "cli.partners.rotate-key", by: "ops-live", detail: "acq")
            #expect(rotation.path == "acq api key partner:acq:api-key@v2", "\(rotation.path)")
            _ = try await Self.waitForRecord(served.auditPath, "cli.admins.add", by: "ops-live", detail: "auditor role viewer")
            _ = try await Self.waitForRecord(served.auditPath, "cli.merchants.remove", by: "ops-live", detail: "m4")
            let update = try await Self.waitForRecord(served.auditPath, "cli.partners.update", by: "ops-live", detail: "acq_live")
            #expect(update.template == "klarna-gateway partners update" && update.path == "acq_live auth form empty-user", "\(update)")
            let removal = try await Self.waitForRecord(served.auditPath, "cli.partners.remove", by: "ops-live", detail: "acq_live")
            #expect(removal.template == "klarna-gateway partners remove" && removal.path == "acq_live", "\(removal)")
            // The harness's setup (partners, merchants, callers added by this OS user) was recorded too, each event once.
            let all = try Self.recorded(served.auditPath)
            #expect(all.contains { $0.operation == "cli.partners.add" && $0.path.hasPrefix("acq test https://localhost:") })
            let ids = all.map(\.requestID)
            #expect(Set(ids).count == ids.count, "every event once: \(ids)")
            try await waitUntil("every event recorded and finished") {
                try await gw.admin.store.adminEvents().allSatisfy { $0.auditedBy == "served-node" || $0.actor == "ops-busy" }
            }
            // Every change above was made after the takeover was recorded, so recorded by a later pass: the pass that
            // took over the abandoned claim had looked at the fresh one too, and left it.
            #expect(try await store.unfinishedAdminEvents(claimedBy: "busy-node").map(\.id) == [busy.id])
            #expect(try !Self.recorded(served.auditPath).contains { $0.caller == "cli:ops-busy" })
            #expect(try await served.stop() == 0)
            #expect(served.child.stderr.contains("took over a change-log event another node claimed"), "the takeover is logged")

            // The chain with these records verifies.
            let verify = try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"), ["audit", "verify", "--audit-db", served.auditPath], directory: gw.directory)
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            // No secret in the trail (every column, as exported) or in the served node's output.
            let export = try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"), ["audit", "export", "--audit-db", served.auditPath, "--format", "jsonl"],
                directory: gw.directory)
            #expect(export.status == 0 && export.stdout.contains("cli.callers.add"), "\(export.stderr)")
            let secrets = gw.plantedSecrets + [Self.rotatedKey, String(token.suffix(43)), String(rotated.suffix(43)), String(adminToken.suffix(43))]
            for (name, text) in [("trail", export.stdout), ("log", served.child.stderr), ("stdout", served.child.stdout)] {
                for secret in secrets { #expect(!text.contains(secret), "a secret in the served node's \(name)") }
            }
        }
    }

    @Test(
        "with two instances on PostgreSQL, exactly one records each CLI change, made before they started or while they run",
        .enabled(if: TestPostgres.serverURL != nil || TestPostgres.required, "needs PostgreSQL: run under bin/with-postgres"))
    func twoInstancesRecordEachChangeOnce() async throws {
        let server = try #require(TestPostgres.serverURL, "KGW_TEST_POSTGRES_URL is not set but PostgreSQL is required here; bin/test starts a server")
        let instances = try await PostgresInstances(server: server, databasePrefix: "kgw_cliaudit_", nodes: ["gw-a", "gw-b"])
        defer { try? FileManager.default.removeItem(at: instances.directory) }
        let paths = ["gw-a", "gw-b"].map { instances.directory.appendingPathComponent("\($0).yaml").path }
        let admin = try await AdminService.open(config: instances.configs[0], environment: [:])
        let acquirer = try TestPKI().issueClient(commonName: "acquirer")
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: Secret("klarna_test_api_PLANTEDpgCLIaudit0f3"), certificatePEM: acquirer.certificatePEM,
            clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:9", authForm: .rawKey))
        func add(_ index: Int) async throws {
            try await Self.cli(
                ["merchants", "add", "pm\(index)", "--partner", "acq", "--account", "krn:partner:global:account:test:PGC\(index)"], configPath: paths[index % 2],
                directory: instances.directory, user: "ops-\(index)")
        }
        // Half before any instance runs, so that both start with the same unclaimed events; half while both run.
        for index in 1...6 { try await add(index) }
        // One of them claimed an hour ago by a node that never came back: exactly one of the two takes it over.
        let store = try #require(admin.store as? any AdminEventAuditing)
        let abandoned = try #require(try await store.unclaimedAdminEvents(limit: 100).first { $0.event.detail.hasPrefix("pm1 ") })
        #expect(try await store.claimAdminEvent(id: abandoned.id, node: "gw-dead", atMicros: UTCTime.nowMicros() - 3_600_000_000))
        async let first = ServedGateway.start(configPath: paths[0], directory: instances.directory, environment: ["KGW_NODE_ID": "gw-a"])
        async let second = ServedGateway.start(configPath: paths[1], directory: instances.directory, environment: ["KGW_NODE_ID": "gw-b"])
        let nodes = try await [first, second]
        for index in 7...12 { try await add(index) }
        // A partner's change and removal, each through either instance's config; a removal refused appends nothing.
        try await Self.cli(["partners", "update", "acq", "--auth-form", "empty-user"], configPath: paths[1], directory: instances.directory, user: "ops-partners")
        let refused = try await ChildProcess.run(
            ChildProcess.productPath("klarna-gateway"), ["partners", "remove", "acq", "--config", paths[0]], environment: ["USER": "ops-partners", "SUDO_USER": "ops-partners"],
            directory: instances.directory)
        #expect(refused.status == 1 && refused.stderr.contains("partner 'acq' is used by 12 merchant(s)"), "\(refused.stderr)")
        _ = try await admin.addPartner(NewPartner(
            id: "spare", environment: .test, apiKey: Secret("klarna_test_api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")),
            certificatePEM: acquirer.certificatePEM, clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:9", authForm: .rawKey))
        try await Self.cli(["partners", "remove", "spare"], configPath: paths[0], directory: instances.directory, user: "ops-partners")
        try await waitUntil("every event recorded and finished") {
            try await admin.store.adminEvents().allSatisfy { $0.auditedBy == "gw-a" || $0.auditedBy == "gw-b" }
        }
        #expect(try await store.unclaimedAdminEvents(limit: 100).isEmpty)
        #expect(try await store.unfinishedAdminEvents(claimedBy: "gw-dead").isEmpty)
        for node in nodes { #expect(try await node.stop() == 0) }
        let records = try nodes.flatMap { try Self.recorded($0.auditPath) }
        let events = try await admin.store.adminEvents()
        #expect(events.count == 16)
        #expect(records.count == events.count, "\(records.map(\.requestID))")
        #expect(Set(records.map(\.requestID)).count == records.count, "an event recorded twice: \(records.map(\.requestID))")
        for index in 1...12 {
            #expect(records.filter { $0.caller == "cli:ops-\(index)" && $0.operation == "cli.merchants.add" && $0.path.hasPrefix("pm\(index) partner acq") }.count == 1)
        }
        #expect(records.filter { $0.caller == "cli:ops-partners" }.map(\.path).sorted() == ["acq auth form empty-user", "spare"])
        #expect(records.filter { $0.caller == "cli:ops-partners" }.map(\.operation).sorted() == ["cli.partners.remove", "cli.partners.update"])
    }
}
