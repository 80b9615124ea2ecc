import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// `klarna-gateway callers …`
struct Callers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Internal clients of the gateway: bearer tokens and/or client-certificate fingerprints.",
        subcommands: [Add.self, List.self, Revoke.self, RotateToken.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a caller; its token is printed once, alone on stdout, and cannot be shown again.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Caller id, as grants name it.") var id: String
        @Option(name: .customLong("cert-fingerprint"), help: "SHA-256 fingerprint (hex) of its client certificate.")
        var certFingerprint: String?
        @Flag(name: .customLong("no-token"), help: "Certificate only: issue no token.") var noToken = false

        func run() async throws {
            try await reportingErrors {
                let (record, token) = try await config.admin().addCaller(
                    id: id, certificateFingerprint: certFingerprint, issueToken: !noToken)
                // Only the token goes to stdout, so `TOKEN=$(klarna-gateway callers add …)` captures exactly it.
                if let token { print(token.rendered.exposedValue) }
                printError("added caller \(record.id)" + (token == nil ? "" : "; the token above is shown only this once"))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List callers (token ids only, never tokens).")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                for caller in try await config.admin().listCallers() {
                    print("\(caller.id)\t\(caller.status.rawValue)\ttoken \(caller.tokenID ?? "-")\tcert \(caller.certificateFingerprint ?? "-")")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a caller.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Caller id.") var id: String

        func run() async throws {
            try await reportingErrors {
                try await config.admin().revokeCaller(id: id)
                print("revoked caller \(id)")
            }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a new token (printed once, alone on stdout); the old one stops working.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Caller id.") var id: String

        func run() async throws {
            try await reportingErrors {
                let token = try await config.admin().rotateCallerToken(id: id)
                print(token.rendered.exposedValue)
                printError("rotated the token of caller \(id); the token above is shown only this once")
            }
        }
    }
}
