import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// `klarna-gateway releases …`
struct Releases: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Klarna releases: availability, merchants on each, staged roll-outs.",
        subcommands: [List.self, Show.self, Rollout.self, Rollback.self, History.self]
    )

    /// The release calendar and catalogue the configuration names.
    static func policies(_ config: GatewayConfig) throws -> (ReleasePolicy, OperationCatalogue) {
        let catalogue = try PolicyLoader.loadCatalogue(path: config.resolve(config.catalogue))
        let releases = try config.policies.releases.map { try PolicyLoader.loadReleases(path: config.resolve($0), catalogue: catalogue) }
        return (releases ?? .klarnaCalendar, catalogue)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each release, its availability per environment, and merchants on it.")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                let configuration = try config.load()
                let (policy, _) = try Releases.policies(configuration)
                print("release\ttest\tlive\tapi\tmerchants\troll-outs")
                for summary in try await config.admin().releaseSummaries(policy: policy) {
                    let rollouts = summary.rollouts.map { "\($0.percent)%\($0.group.map { " of \($0)" } ?? "")" }.joined(separator: ", ")
                    print("\(summary.release.id)\t\(summary.release.test ?? "-")\t\(summary.release.live ?? "-")\t\(summary.release.apiMajor)\t\(summary.merchants)\t\(rollouts.isEmpty ? "-" : rollouts)")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The operations a release adds over the previous one.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Release id (r7).") var release: String

        func run() async throws {
            try await reportingErrors {
                let (policy, catalogue) = try Releases.policies(try config.load())
                guard let known = policy.release(release) else { throw ValidationFailure("unknown release '\(release)'") }
                print("\(known.id) (\(known.name)): test from \(known.test ?? "-"), live from \(known.live ?? "-"), API \(known.apiMajor)")
                let added = catalogue.operations.filter { $0.introducedIn == release }
                print("adds \(added.count) operation(s):")
                for operation in added {
                    print("  \(operation.id)\t\(operation.method) \(operation.template)\(operation.testOnly ? "\t(test only)" : "")")
                }
            }
        }
    }

    struct Rollout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a stable, hash-chosen share of merchants onto a release.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Release id.") var release: String
        @Option(name: .customLong("percent"), help: "Share of merchants, 0-100.") var percent: Double
        @Option(name: .customLong("group"), help: "Only merchants of this group.") var group: String?

        func run() async throws {
            try await reportingErrors {
                let (policy, _) = try Releases.policies(try config.load())
                let covered = try await config.admin().rollOut(release: release, percent: percent, group: group, policy: policy)
                print("roll-out of \(release) at \(percent)%\(group.map { " of group \($0)" } ?? ""): \(covered) merchant(s); pinned merchants keep their pin")
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every roll-out, rollback and release pin, oldest first, with who made it.")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                for event in try await config.admin().store.adminEvents() where event.isReleaseChange {
                    let time = UTCTime.timestamp(micros: event.timeMicros)
                    print("\(time)\t\(event.actor)\t\(event.action)\t\(event.detail)")
                }
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a release's roll-outs; its merchants return to their previous release.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Release id.") var release: String

        func run() async throws {
            try await reportingErrors {
                let removed = try await config.admin().rollBack(release: release)
                print("rolled back \(release) (\(removed) roll-out(s) removed)")
            }
        }
    }
}
