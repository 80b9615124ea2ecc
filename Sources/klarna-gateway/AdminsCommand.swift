import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

extension AdminRole: ExpressibleByArgument {}

/// `klarna-gateway admins …`
struct Admins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accounts of the admin API (/admin/v1/ on the admin listener): a role and a bearer token.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an admin account; its token is printed once, alone on stdout, and cannot be shown again.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Account name, as audit records show it (admin:NAME).") var name: String
        @Option(help: "viewer (read), operator (merchants, callers) or security (also credentials, keys, admins).") var role: AdminRole

        func run() async throws {
            try await reportingErrors {
                let (account, token) = try await config.admin().addAdmin(name: name, role: role)
                // Only the token goes to stdout, so `TOKEN=$(klarna-gateway admins add …)` captures exactly it.
                print(token.exposedValue)
                printError("added admin \(account.name) (\(account.role.rawValue)); the token above is shown only this once")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List admin accounts (names and roles, never tokens).")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                for account in try await config.admin().listAdmins() {
                    print("\(account.name)\t\(account.role.rawValue)\tadded \(UTCTime.day(epochSeconds: Int(account.createdMicros / 1_000_000)))")
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an admin account; its token stops working at once.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Account name.") var name: String

        func run() async throws {
            try await reportingErrors {
                try await config.admin().removeAdmin(name: name)
                print("removed admin \(name)")
            }
        }
    }
}
