import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// `klarna-gateway policies …`: the access and rate-limit policies' stored versions, as the admin API applies them.
struct Policies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Access and rate-limit policies: apply a new version, see the history, roll back, return to the file.",
        discussion: """
            A stored version overrides the file the configuration names (policies.access, policies.rate_limits) on every \
            instance; `use-file` hands the policy back to the file. Running gateways reload at once on PostgreSQL and \
            within reload_interval_ms on SQLite, and record each change in their audit chains.
            """,
        subcommands: [Apply.self, History.self, Rollback.self, UseFile.self]
    )

    /// The kind an argument names: `access` or `rate-limits`.
    static func kind(_ name: String) throws -> StoredPolicyKind {
        guard let kind = StoredPolicyKind(pathName: name) else { throw ValidationFailure("the policy is access or rate-limits, not '\(name)'") }
        return kind
    }

    /// Validates `yaml` against the configured catalogue and stores it as the newest version; prints what was stored.
    static func apply(_ config: ConfigOptions, kind: StoredPolicyKind, yaml: String, source: String, comment: String?) async throws {
        let configuration = try config.load()
        let (_, catalogue) = try Releases.policies(configuration)
        let admin = try await config.admin()
        let newest = try await admin.newestPolicyVersion(kind)
        let policy = try await admin.validatePolicy(kind, yaml: yaml, catalogue: catalogue, source: source)
        for warning in policy.warnings { printError("warning: \(warning)") }
        guard try await admin.applyPolicy(policy, comment: comment, expectingNewest: newest?.id) != nil else {
            throw ValidationFailure("the \(kind.pathName) policy changed meanwhile; nothing was applied, run the command again")
        }
        print("\(kind.pathName) policy version \(policy.version) applied; it overrides \(configuration.policies.fileDescription(kind))")
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a policy file and store it as the newest version.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "access or rate-limits.") var policy: String
        @Argument(help: "The policy file (- for standard input).") var file: String
        @Option(name: .customLong("comment"), help: "Why, kept with the version.") var comment: String?

        func run() async throws {
            try await reportingErrors {
                let kind = try Policies.kind(policy)
                let yaml = try SecretInput.text(file, what: "\(kind.pathName) policy")
                try await Policies.apply(config, kind: kind, yaml: yaml, source: file, comment: comment)
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stored versions, newest first: version, who, when, comment.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "access or rate-limits.") var policy: String
        @Option(name: .customLong("limit"), help: "How many versions.") var limit = 20
        @Option(name: .customLong("show"), help: "Print the text of this version instead.") var show: String?

        func run() async throws {
            try await reportingErrors {
                let kind = try Policies.kind(policy)
                let admin = try await config.admin()
                if let show {
                    guard let stored = try await admin.storedPolicy(kind, version: EntityTag.quoted(show)), let yaml = stored.yaml else {
                        throw ValidationFailure("no stored version \(show) of the \(kind.pathName) policy")
                    }
                    print(yaml, terminator: yaml.hasSuffix("\n") ? "" : "\n")
                    return
                }
                let rows = try await admin.policyHistory(kind, limit: max(1, limit))
                if rows.first?.returnsToFile ?? true { print("in force: \(try config.load().policies.fileDescription(kind))") }
                print("version\tapplied_by\tapplied_at\tcomment")
                for row in rows {
                    print("\(row.version ?? "file")\t\(row.appliedBy)\t\(UTCTime.timestamp(micros: row.appliedAtMicros))\t\(row.comment ?? "-")")
                }
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store an earlier version's text again as the newest version.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "access or rate-limits.") var policy: String
        @Argument(help: "A version from `policies history`.") var version: String
        @Option(name: .customLong("comment"), help: "Why, kept with the version.") var comment: String?

        func run() async throws {
            try await reportingErrors {
                let kind = try Policies.kind(policy)
                let tag = EntityTag.quoted(version)
                guard let stored = try await config.admin().storedPolicy(kind, version: tag), let yaml = stored.yaml else {
                    throw ValidationFailure("no stored version \(tag) of the \(kind.pathName) policy (see `policies history \(kind.pathName)`)")
                }
                try await Policies.apply(
                    config, kind: kind, yaml: yaml, source: "stored \(kind.pathName) policy \(tag)", comment: comment ?? "rollback to version \(tag)")
            }
        }
    }

    struct UseFile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "use-file", abstract: "Hand the policy back to the configuration's file; stored versions stay in the history.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "access or rate-limits.") var policy: String

        func run() async throws {
            try await reportingErrors {
                let kind = try Policies.kind(policy)
                let admin = try await config.admin()
                guard let newest = try await admin.newestPolicyVersion(kind), !newest.returnsToFile else {
                    print("the \(kind.pathName) policy already comes from the file")
                    return
                }
                guard try await admin.returnPolicyToFile(kind, expectingNewest: newest.id) != nil else {
                    throw ValidationFailure("the \(kind.pathName) policy changed meanwhile; nothing was changed, run the command again")
                }
                print("the \(kind.pathName) policy comes from \(try config.load().policies.fileDescription(kind)) again")
            }
        }
    }
}
