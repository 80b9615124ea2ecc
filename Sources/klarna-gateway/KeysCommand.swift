import ArgumentParser
import GatewayApp

/// `klarna-gateway keys …`
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The master key ring that seals every stored secret.",
        subcommands: [Init.self, Rotate.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the key-ring file (mode 0600); never overwrites.")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                let path = try AdminService.initializeKeyRing(config: config.load())
                print("created master key ring \(path) with key v1; back it up: without it no stored secret can be opened")
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append a new master key version and re-seal every secret under it.")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingErrors {
                let (version, count) = try await config.admin().rotateMasterKey()
                print("master key is now v\(version); re-sealed \(count) secrets (older versions stay in the ring)")
            }
        }
    }
}
