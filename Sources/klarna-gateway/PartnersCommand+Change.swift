import ArgumentParser
import GatewayApp
import GatewayCore

extension Partners {
    /// `partners update`: the settings the admin API's `PATCH /admin/v1/partners/{id}` changes and the credentials its
    /// `PUT …/credentials` replaces, through the same `AdminService` operations and checks, so both refuse the same
    /// values with the same words.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a partner's base URL, auth form or default release, and/or replace its API key or client certificate.",
            discussion: "Everything given is checked before anything is written; new secrets are read from files or - for stdin.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String
        @Option(name: .customLong("base-url"), help: "New upstream base URL (https://host[:port][/prefix]).") var baseURL: String?
        @Option(name: .customLong("auth-form"), help: "raw or empty-user.") var authForm: String?
        @Option(name: .customLong("default-release"), help: "The release its merchants follow when nothing else picks one (r7).")
        var defaultRelease: String?
        @Flag(name: .customLong("clear-default-release"), help: "Remove the partner's default release.") var clearDefaultRelease = false
        @Option(name: .customLong("api-key-file"), help: "File holding a new API key, or - for stdin.") var apiKeyFile: String?
        @Option(name: .customLong("client-cert"), help: "A new PEM client certificate chain, leaf first (with --client-key).") var clientCert: String?
        @Option(name: .customLong("client-key"), help: "Its PEM private key, or - for stdin.") var clientKey: String?

        func run() async throws {
            try await reportingErrors {
                guard !(defaultRelease != nil && clearDefaultRelease) else {
                    throw ValidationFailure("give at most one of --default-release R or --clear-default-release")
                }
                guard (clientCert == nil) == (clientKey == nil) else { throw ValidationFailure("--client-cert and --client-key go together") }
                let settings = baseURL != nil || authForm != nil || defaultRelease != nil || clearDefaultRelease
                guard settings || apiKeyFile != nil || clientCert != nil else {
                    throw ValidationFailure(
                        "give at least one of --base-url, --auth-form, --default-release, --clear-default-release, --api-key-file, --client-cert with --client-key")
                }
                let form = try authForm.map { text in
                    guard let form = BasicAuthForm(rawValue: text) else { throw ValidationFailure("--auth-form must be raw or empty-user") }
                    return form
                }
                try SecretInput.checkOneStdin(apiKeyFile, clientCert, clientKey)
                let apiKey = try apiKeyFile.map { try SecretInput.read($0, what: "API key") }
                let certificate = try clientCert.map { try SecretInput.text($0, what: "client certificate") }
                let privateKey = try clientKey.map { try SecretInput.read($0, what: "client key") }
                let release: String?? = clearDefaultRelease ? .some(nil) : defaultRelease.map { .some($0) }
                let change = PartnerChange(baseURL: baseURL, authForm: form, defaultRelease: release)
                // The calendar (and the catalogue it needs) is read only to check a new default release; without
                // one the policy given is never consulted.
                let policy = try defaultRelease.map { _ in try Releases.policies(try config.load()).0 } ?? .klarnaCalendar

                let admin = try await config.admin()
                let current = try await admin.showPartner(id: id).record
                // Every check before the first write, so a refused key or certificate leaves the settings as they were.
                if settings { _ = try AdminService.changed(current, by: change, policy: policy) }
                try AdminService.checkCredentials(of: current, apiKey: apiKey, certificatePEM: certificate, clientKeyPEM: privateKey)
                if settings { try await admin.updatePartner(id: id, change, policy: policy) }
                if let apiKey { try await admin.rotatePartnerKey(id: id, apiKey: apiKey) }
                if let certificate, let privateKey {
                    try await admin.rotatePartnerCertificate(id: id, certificatePEM: certificate, clientKeyPEM: privateKey)
                }
                let record = try await admin.showPartner(id: id)
                print(
                    "partner \(id): base url \(record.record.baseURL), auth form \(record.record.authForm.rawValue), "
                        + "default release \(record.record.defaultRelease ?? "none"), api key \(record.record.apiKey) \(record.apiKeyHint), "
                        + "client key \(record.record.clientKey), certificate sha256 \(record.certificateFingerprint)")
            }
        }
    }

    /// `partners remove`: as `DELETE /admin/v1/partners/{id}`, refused while merchants use the partner.
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a partner and every version of its sealed API key and client key; refused while merchants use it.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String

        func run() async throws {
            try await reportingErrors {
                try await config.admin().removePartner(id: id)
                print("removed partner \(id) and its sealed secrets")
            }
        }
    }
}
