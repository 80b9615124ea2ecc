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
        @Option(
            help: """
                SHA-256 fingerprint of the admin's client certificate (64 hex digits, colons allowed): on a TLS admin listener \
                that asks for client certificates, the certificate alone is this account, and its token works only beside it.
                """)
        var certificateFingerprint: String?
        @Flag(name: .customLong("no-token"), help: "Certificate only (needs --certificate-fingerprint): issue no token.") var noToken = false

        func run() async throws {
            try await reportingErrors {
                if noToken {
                    guard let certificateFingerprint else {
                        throw ValidationFailure("an admin without a token needs --certificate-fingerprint: its certificate is then the account")
                    }
                    let account = try await config.admin().addCertificateAdmin(name: name, role: role, certificateFingerprint: certificateFingerprint)
                    printError("added admin \(account.name) (\(account.role.rawValue)), certificate only: no token was issued")
                    return
                }
                let (account, token) = try await config.admin().addAdmin(name: name, role: role, certificateFingerprint: certificateFingerprint)
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
                    let certificate = account.certificateFingerprint.map { "\tcertificate \($0)\(account.hasToken ? "" : " (no token)")" } ?? ""
                    print(
                        "\(account.name)\t\(account.role.rawValue)\tadded \(UTCTime.day(epochSeconds: Int(account.createdMicros / 1_000_000)))\(certificate)")
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
