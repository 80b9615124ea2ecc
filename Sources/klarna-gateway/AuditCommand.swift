import ArgumentParser
import Foundation
import GatewayApp
import GatewayAudit
import GatewayPostgres

/// `klarna-gateway audit …`: verify, read and prune the audit trail.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify, read and prune the tamper-evident audit trail.",
        subcommands: [Verify.self, Tail.self, Export.self, Stats.self, Prune.self]
    )

    /// Where the store is: `--audit-db` wins, else the config file's `audit:` section.
    struct StoreOptions: ParsableArguments {
        @Option(name: .long, help: "Gateway configuration file.")
        var config: String = "config/gateway.yaml"

        @Option(name: .customLong("audit-db"), help: "The audit SQLite file or postgres:// URL (overrides the configuration).")
        var auditDB: String?

        /// Only the keys this command needs; the rest of gateway.yaml is ignored.
        private struct ConfigFile: Decodable {
            var audit: AuditSettings?
        }

        func settings() throws -> (store: String, checkpointFile: String?) {
            var settings = AuditSettings()
            let base = URL(fileURLWithPath: config).deletingLastPathComponent().path
            if FileManager.default.fileExists(atPath: config) {
                let file = try ConfigLoader.load(ConfigFile.self, path: config, environment: ProcessInfo.processInfo.environment,
                                                 overridePrefix: ConfigLoader.prefix)
                settings = file.audit ?? settings
            } else if auditDB == nil {
                throw ValidationError("no configuration at \(config); pass --config or --audit-db")
            }
            func resolve(_ path: String) -> String { path.hasPrefix("/") || PostgresURL.isPostgresURL(path) ? path : base + "/" + path }
            return (auditDB ?? resolve(settings.path), settings.checkpointFile.map(resolve))
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the chain and check every checkpoint; exit 0 only when the trail is intact.")

        @OptionGroup var store: StoreOptions

        @Option(name: .customLong("from-checkpoint"), help: "A trusted copy of a shipped checkpoint file (repeatable: one per node).")
        var fromCheckpoint: [String] = []

        @Option(name: .customLong("public-key"), help: "Trusted signing key as KEY_ID=HEX (repeatable).")
        var publicKeys: [String] = []

        @Option(help: "Verify this prune archive instead of the store.")
        var archive: String?

        func run() async throws {
            let keys = try AuditVerifier.trustedKeys(parsing: publicKeys)
            if let archive {
                try report(AuditVerifier.verifyArchive(URL(fileURLWithPath: archive), publicKeys: keys))
                return
            }
            let (path, localCheckpoints) = try store.settings()
            var checkpointFiles = fromCheckpoint
            if checkpointFiles.isEmpty, let localCheckpoints, FileManager.default.fileExists(atPath: localCheckpoints) {
                checkpointFiles = [localCheckpoints]
                print("note: using the local checkpoint file \(localCheckpoints); pass --from-checkpoint with the shipped copy")
            }
            try report(AuditVerifier.verify(
                path: path, trustedCheckpointFiles: checkpointFiles.map { URL(fileURLWithPath: $0) }, publicKeys: keys))
        }

        private func report(_ report: VerificationReport) throws {
            for note in report.notes { print("note: \(note)") }
            for chain in report.chains {
                print("node \(chain.nodeID): \(chain.recordsChecked) records (seq \(chain.anchorSeq + 1)…\(chain.lastSeq)), "
                    + "newest checkpoint \(chain.newestCheckpointSeq), \(chain.problemCount == 0 ? "intact" : "\(chain.problemCount) problem(s)")")
            }
            if !report.chains.isEmpty {
                print("chains checked: \(report.chains.count), records checked: \(report.recordsChecked), checkpoints checked: \(report.checkpointsChecked)")
            } else {
                print("records checked: \(report.recordsChecked) (seq \(report.anchorSeq + 1)…\(report.lastSeq)), checkpoints checked: \(report.checkpointsChecked)")
            }
            guard !report.isIntact else {
                print("intact")
                return
            }
            if let first = report.firstProblem { print("FIRST BAD SEQUENCE NUMBER: \(first.seq) (\(first.kind.rawValue))") }
            for problem in report.problems { print("  \(problem)") }
            if report.problemCount > report.problems.count { print("  … \(report.problemCount - report.problems.count) more") }
            throw ExitCode(1)
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the newest records (JSON lines).")

        @OptionGroup var store: StoreOptions

        @Flag(name: .long, help: "Keep printing records as they are written.")
        var follow = false

        @Option(name: .short, help: "How many records to print first.")
        var n: Int = 20

        func run() async throws {
            try await AuditReader.tail(path: try store.settings().store, count: n, follow: follow, to: .standardOutput())
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stream records in a time window to standard output.")

        @OptionGroup var store: StoreOptions

        @Option(help: "Start (inclusive), ISO 8601 date or date-time, UTC unless stated.")
        var since: String?

        @Option(help: "End (exclusive), ISO 8601 date or date-time.")
        var until: String?

        @Option(help: "Only this merchant id.")
        var merchant: String?

        @Option(help: "Only this caller id.")
        var caller: String?

        @Option(help: "Only the records of this request id (Klarna-Gateway-Request-Id).")
        var requestId: String?

        @Option(help: "Only records with this gateway error code (GATEWAY_MERCHANT_SUSPENDED …).")
        var errorCode: String?

        @Option(help: "jsonl or csv.")
        var format: String = "jsonl"

        func run() async throws {
            guard let format = AuditExportFormat(rawValue: format) else { throw ValidationError("--format is jsonl or csv") }
            let filter = AuditFilter(
                sinceMicros: try since.map(AuditDate.micros), untilMicros: try until.map(AuditDate.micros),
                merchantID: merchant, callerID: caller, requestID: requestId, gatewayErrorCode: errorCode)
            let output = AuditOutput.standardOutput()
            try AuditReader.export(path: try store.settings().store, filter: filter, format: format, to: output)
            try output.flush()
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Calls per merchant, caller and status over a window.")

        @OptionGroup var store: StoreOptions

        @Option(help: "Start (inclusive), ISO 8601.")
        var since: String?

        @Option(help: "End (exclusive), ISO 8601.")
        var until: String?

        func run() async throws {
            let filter = AuditFilter(sinceMicros: try since.map(AuditDate.micros), untilMicros: try until.map(AuditDate.micros))
            let stats = try AuditReader.stats(path: try store.settings().store, filter: filter)
            print("calls: \(stats.calls)")
            for (title, rows) in [("merchant", stats.byMerchant), ("caller", stats.byCaller), ("status", stats.byStatus)] {
                print("by \(title):")
                for (key, count) in rows { print("  \(key)\t\(count)") }
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Archive records older than a date (up to the newest checkpoint before it), then delete them.")

        @OptionGroup var store: StoreOptions

        @Option(help: "Prune records before this ISO 8601 date.")
        var before: String

        @Option(help: "The JSONL archive to write (must not exist).")
        var archive: String

        func run() async throws {
            guard !FileManager.default.fileExists(atPath: archive) else { throw ValidationError("\(archive) already exists") }
            let result = try AuditPruner.prune(path: try store.settings().store, beforeMicros: try AuditDate.micros(before), archive: archive)
            if result.anchors.count > 1 {
                print("archived and deleted \(result.archivedRecords) records of \(result.anchors.count) nodes into \(archive)")
                for anchor in result.anchors { print("node \(anchor.nodeID): up to seq \(anchor.seq)") }
            } else if let anchor = result.anchor {
                print("archived and deleted \(result.archivedRecords) records up to seq \(anchor.seq) into \(archive)")
            } else {
                print("nothing to prune: no signed checkpoint precedes \(before)")
            }
        }
    }
}

/// Parses the command line's dates.
enum AuditDate {
    static func micros(_ text: String) throws -> Int64 {
        guard let micros = AuditFilter.micros(text) else { throw ValidationError("not an ISO 8601 date or date-time: \(text)") }
        return micros
    }
}
