import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// `klarna-gateway partners …`
struct Partners: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The acquirer's Klarna accounts: API key and mTLS client certificate per environment.",
        subcommands: [Add.self, List.self, Show.self, RotateKey.self, RotateCert.self, Update.self, Remove.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a partner (secrets are read from files or - for stdin).")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String
        @Option(name: .customLong("environment"), help: "test or live.") var environment: String
        @Option(name: .customLong("api-key-file"), help: "File holding the API key, or - for stdin.") var apiKeyFile: String
        @Option(name: .customLong("client-cert"), help: "PEM client certificate chain, leaf first.") var clientCert: String
        @Option(name: .customLong("client-key"), help: "PEM private key of the client certificate, or -.") var clientKey: String
        @Option(name: .customLong("base-url"), help: "Upstream base URL (default: Klarna's host for the environment).")
        var baseURL: String?
        @Option(name: .customLong("auth-form"), help: "raw or empty-user.") var authForm = "raw"

        func run() async throws {
            try await reportingErrors {
                guard let environment = KlarnaEnvironment(rawValue: environment) else {
                    throw ValidationFailure("--environment must be test or live")
                }
                guard let form = BasicAuthForm(rawValue: authForm) else {
                    throw ValidationFailure("--auth-form must be raw or empty-user")
                }
                try SecretInput.checkOneStdin(apiKeyFile, clientCert, clientKey)
                let input = NewPartner(
                    id: id, environment: environment, apiKey: try SecretInput.read(apiKeyFile, what: "API key"),
                    certificatePEM: try SecretInput.text(clientCert, what: "client certificate"),
                    clientKeyPEM: try SecretInput.read(clientKey, what: "client key"), baseURL: baseURL, authForm: form
                )
                let record = try await config.admin().addPartner(input)
                print("added partner \(record.id) (\(record.environment), \(record.baseURL))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List partners (no secrets: key hints and fingerprints only).")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                for summary in try await config.admin().listPartners() {
                    let record = summary.record
                    print(
                        "\(record.id)\t\(record.environment)\t\(record.baseURL)\tkey \(summary.apiKeyHint)\t"
                            + "cert \(summary.certificateFingerprint.prefix(16))…\tmerchants \(summary.merchantCount)")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one partner (no secrets).")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String

        func run() async throws {
            try await reportingErrors {
                let summary = try await config.admin().showPartner(id: id)
                let record = summary.record
                print("id:                  \(record.id)")
                print("environment:         \(record.environment)")
                print("base url:            \(record.baseURL)")
                print("auth form:           \(record.authForm.rawValue)")
                print("api key:             \(record.apiKey) \(summary.apiKeyHint)")
                print("client key:          \(record.clientKey)")
                print("client certificate:  sha256 \(summary.certificateFingerprint)")
                if let notAfter = summary.certificateNotValidAfter {
                    print("certificate expires: \(ISO8601DateFormatter().string(from: notAfter))")
                }
                print("default release:     \(record.defaultRelease ?? "-")")
                print("merchants:           \(summary.merchantCount)")
            }
        }
    }

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Seal a new API key as the next version.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String
        @Option(name: .customLong("api-key-file"), help: "File holding the new API key, or - for stdin.") var apiKeyFile: String

        func run() async throws {
            try await reportingErrors {
                let key = try SecretInput.read(apiKeyFile, what: "API key")
                let credential = try await config.admin().rotatePartnerKey(id: id, apiKey: key)
                print("partner \(id): API key is now \(credential) \(key.hint)")
            }
        }
    }

    struct RotateCert: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace the client certificate and seal its key as the next version.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String
        @Option(name: .customLong("client-cert"), help: "PEM client certificate chain, leaf first.") var clientCert: String
        @Option(name: .customLong("client-key"), help: "PEM private key, or - for stdin.") var clientKey: String

        func run() async throws {
            try await reportingErrors {
                try SecretInput.checkOneStdin(clientCert, clientKey)
                let certificate = try SecretInput.text(clientCert, what: "client certificate")
                let key = try SecretInput.read(clientKey, what: "client key")
                let credential = try await config.admin().rotatePartnerCertificate(
                    id: id, certificatePEM: certificate, clientKeyPEM: key)
                let fingerprint = try ClientCertificate(pem: certificate).fingerprint
                print("partner \(id): client key is now \(credential), certificate sha256 \(fingerprint)")
            }
        }
    }
}
