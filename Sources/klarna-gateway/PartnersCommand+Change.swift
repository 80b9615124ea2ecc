import ArgumentParser
import GatewayApp
import GatewayCore

extension Partners {
    /// `partners update`: the settings the admin API's `PATCH /admin/v1/partners/{id}` changes, through the same
    /// `AdminService.updatePartner`, so both refuse the same values with the same words.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a partner's base URL, auth form or default release (its secrets: rotate-key, rotate-cert).")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Partner id.") var id: String
        @Option(name: .customLong("base-url"), help: "New upstream base URL (https://host[:port][/prefix]).") var baseURL: String?
        @Option(name: .customLong("auth-form"), help: "raw or empty-user.") var authForm: String?
        @Option(name: .customLong("default-release"), help: "The release its merchants follow when nothing else picks one (r7).")
        var defaultRelease: String?
        @Flag(name: .customLong("clear-default-release"), help: "Remove the partner's default release.") var clearDefaultRelease = false

        func run() async throws {
            try await reportingErrors {
                guard !(defaultRelease != nil && clearDefaultRelease) else {
                    throw ValidationFailure("give at most one of --default-release R or --clear-default-release")
                }
                guard baseURL != nil || authForm != nil || defaultRelease != nil || clearDefaultRelease else {
                    throw ValidationFailure("give at least one of --base-url, --auth-form, --default-release or --clear-default-release")
                }
                let form = try authForm.map { text in
                    guard let form = BasicAuthForm(rawValue: text) else { throw ValidationFailure("--auth-form must be raw or empty-user") }
                    return form
                }
                let release: String?? = clearDefaultRelease ? .some(nil) : defaultRelease.map { .some($0) }
                // The calendar (and the catalogue it needs) is read only to check a new default release; without
                // one `updatePartner` never consults the policy given.
                let policy = try defaultRelease.map { _ in try Releases.policies(try config.load()).0 } ?? .klarnaCalendar
                let record = try await config.admin().updatePartner(
                    id: id, PartnerChange(baseURL: baseURL, authForm: form, defaultRelease: release), policy: policy)
                print(
                    "partner \(record.id): base url \(record.baseURL), auth form \(record.authForm.rawValue), "
                        + "default release \(record.defaultRelease ?? "none")")
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
