import Foundation
import GatewayCore
import GatewayTestSupport
import Testing

/// `klarna-gateway policies` on the binary, against a running gateway's store: a version applied, refused with its
/// problems, listed, rolled back and handed back to the file, each in force at the gateway's next reload, and each
/// recorded in a served node's audit chain as every CLI change is.
@Suite struct PoliciesCommandTests {
    @Test("policies apply, history, rollback and use-file change what the gateway enforces, and each change is audited")
    func applyHistoryRollbackUseFile() async throws {
        try await withGateway { gw in
            @discardableResult
            func cli(_ arguments: [String], stdin: String? = nil) async throws -> (stdout: String, stderr: String) {
                try await CLIAuditTests.cli(arguments, configPath: gw.configPath, directory: gw.directory, user: "ops-policies", stdin: stdin)
            }
            func callerBurst() -> Int? { gw.service.runtime.snapshots.current.rateLimits.caller?.burst }
            #expect(callerBurst() == nil, "no caller limit in Klarna's defaults")
            let tight = "merchant:\n  test:\n    default: {rate: 50, burst: 50}\ncaller: {rate: 0.01, burst: 1}\n"
            let looser = tight.replacingOccurrences(of: "burst: 1}", with: "burst: 7}")
            let file = gw.directory.appendingPathComponent("tight.yaml")
            try tight.write(to: file, atomically: true, encoding: .utf8)

            let applied = try await cli(["policies", "apply", "rate-limits", file.path, "--comment", "night batch"]).stdout
            #expect(applied.contains("rate-limits policy version \"") && applied.contains("Klarna's default rate limits"), "\(applied)")
            try await gw.waitForReload()
            #expect(callerBurst() == 1)
            try await cli(["policies", "apply", "rate-limits", "-"], stdin: looser)
            try await gw.waitForReload()
            #expect(callerBurst() == 7)

            // A policy with problems is refused with them, and nothing is stored.
            let refused = try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"), ["policies", "apply", "rate-limits", "-", "--config", gw.configPath],
                environment: ["USER": "ops-policies"], directory: gw.directory, stdin: "caller: {rate: -1}\n")
            #expect(refused.status == 1 && refused.stderr.contains("rate"), "\(refused.stderr)")
            #expect(try await ChildProcess.run(
                ChildProcess.productPath("klarna-gateway"), ["policies", "apply", "nonsense", "-", "--config", gw.configPath], directory: gw.directory,
                stdin: tight).status == 1)

            // The history, newest first, by whom and why; the first version's text on request; a rollback to it.
            let history = try await cli(["policies", "history", "rate-limits"]).stdout.split(separator: "\n").map(String.init)
            #expect(history.count == 3 && history[0].hasPrefix("version\t"), "\(history)")
            #expect(history.dropFirst().allSatisfy { $0.contains("\tops-policies\t") })
            #expect(history[2].hasSuffix("\tnight batch"))
            let first = try #require(history[2].split(separator: "\t").first.map(String.init))
            #expect(try await cli(["policies", "history", "rate-limits", "--show", first]).stdout == tight)
            try await cli(["policies", "rollback", "rate-limits", first])
            try await gw.waitForReload()
            #expect(callerBurst() == 1)

            // Back to the file (here: none, so Klarna's defaults); the history keeps every version.
            #expect(try await cli(["policies", "use-file", "rate-limits"]).stdout.contains("comes from Klarna's default rate limits (no policies.rate_limits file) again"))
            try await gw.waitForReload()
            #expect(callerBurst() == nil)
            let after = try await cli(["policies", "history", "rate-limits"]).stdout
            #expect(after.hasPrefix("in force: Klarna's default rate limits") && after.contains("\nfile\tops-policies\t"), "\(after)")
            #expect(try await cli(["policies", "use-file", "rate-limits"]).stdout.contains("already comes from the file"))

            // Each change is in the change log and recorded by a served node as a CLI change.
            let actions = try await gw.admin.store.adminEvents().filter { $0.actor == "ops-policies" }.map(\.action)
            #expect(actions == ["policies.apply", "policies.apply", "policies.apply", "policies.use-file"])
            let served = try await ServedGateway.start(gw)
            let record = try await CLIAuditTests.waitForRecord(served.auditPath, "cli.policies.apply", by: "ops-policies", detail: "night batch")
            #expect(record.template == "klarna-gateway policies apply" && record.path.hasPrefix("rate_limits version \""), "\(record)")
            _ = try await CLIAuditTests.waitForRecord(served.auditPath, "cli.policies.use-file", by: "ops-policies", detail: "rate_limits")
            #expect(try await served.stop() == 0)
        }
    }
}
