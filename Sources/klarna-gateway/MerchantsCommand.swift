import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// `klarna-gateway merchants …`
struct Merchants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merchants the acquirer acts for, each bound to a partner and a Klarna account.",
        subcommands: [Add.self, Update.self, List.self, Show.self, Suspend.self, Resume.self, Remove.self, Import.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a merchant.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Merchant id (letters, digits, '-', '_', '.').") var id: String
        @Option(name: .customLong("partner"), help: "The partner whose key and certificate its calls use.") var partner: String
        @Option(name: .customLong("account"), help: "Its Klarna account KRN.") var account: String
        @Option(name: .customLong("group"), help: "A group (repeatable).") var groups: [String] = []
        @Option(name: .customLong("api-key-file"), help: "The merchant's own API key (direct model), or - for stdin.")
        var apiKeyFile: String?
        @Option(name: .customLong("release"), help: "Pin the merchant to a Klarna release (r7).") var release: String?

        func run() async throws {
            try await reportingErrors {
                let key = try apiKeyFile.map { try SecretInput.read($0, what: "API key") }
                let admin = try await config.admin()
                let policy = try release.map { _ in try Releases.policies(try config.load()).0 }
                if let release, let policy, let environment = AccountKRN(account)?.environment {
                    // Checked before adding, so a refused pin adds nothing.
                    try AdminService.checkPin(release, environment: environment, policy: policy)
                }
                let record = try await admin.addMerchant(id: id, partnerID: partner, account: account, groups: groups, apiKey: key)
                if let release, let policy { try await admin.pinMerchant(id: id, release: release, policy: policy) }
                print("added merchant \(record.id) (\(record.account), partner \(record.partnerID))\(release.map { ", release \($0)" } ?? "")")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a merchant's release pin.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Merchant id.") var id: String
        @Option(name: .customLong("release"), help: "Pin the merchant to a Klarna release (r7).") var release: String?
        @Flag(name: .customLong("clear-release"), help: "Remove the merchant's release pin.") var clearRelease = false

        func run() async throws {
            try await reportingErrors {
                guard (release != nil) != clearRelease else { throw ValidationFailure("give exactly one of --release R or --clear-release") }
                let (policy, _) = try Releases.policies(try config.load())
                let record = try await config.admin().pinMerchant(id: id, release: release, policy: policy)
                print("merchant \(record.id): release \(record.release ?? "none (follows roll-outs, group, partner, latest)")")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List merchants.")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                var out = ""
                for record in try await config.admin().listMerchants() {
                    out += "\(record.id)\t\(record.partnerID)\t\(record.account)\t\(record.status.rawValue)\t"
                        + "\(record.groups.joined(separator: ";"))\t\(record.apiKey.map { "own key \($0)" } ?? "-")\n"
                }
                FileHandle.standardOutput.write(Data(out.utf8))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one merchant.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Merchant id.") var id: String

        func run() async throws {
            try await reportingErrors {
                let record = try await config.admin().showMerchant(id: id)
                print("id:       \(record.id)")
                print("partner:  \(record.partnerID)")
                print("account:  \(record.account)")
                print("status:   \(record.status.rawValue)")
                print("groups:   \(record.groups.isEmpty ? "-" : record.groups.joined(separator: ", "))")
                print("own key:  \(record.apiKey.map(\.description) ?? "-")")
                print("release:  \(record.release ?? "-")")
            }
        }
    }

    struct Suspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Refuse a merchant's calls until resumed.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Merchant id.") var id: String

        func run() async throws {
            try await reportingErrors {
                try await config.admin().setMerchantStatus(id: id, .suspended)
                print("suspended merchant \(id)")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forward a suspended merchant's calls again.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Merchant id.") var id: String

        func run() async throws {
            try await reportingErrors {
                try await config.admin().setMerchantStatus(id: id, .active)
                print("resumed merchant \(id)")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a merchant and its sealed secrets.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Merchant id.") var id: String

        func run() async throws {
            try await reportingErrors {
                try await config.admin().removeMerchant(id: id)
                print("removed merchant \(id)")
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import merchants from CSV (header id,partner,account[,group]; groups separated by ';'), all or nothing.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "The CSV file, or - for stdin.") var file: String

        func run() async throws {
            try await reportingErrors {
                let text = try SecretInput.text(file, what: "CSV")
                let started = ContinuousClock.now
                let result = try await config.admin().importMerchants(csv: text)
                let elapsed = ContinuousClock.now - started
                let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
                print("imported \(result.added + result.updated) merchants (\(result.added) added, \(result.updated) updated) in \(milliseconds) ms")
            }
        }
    }
}
