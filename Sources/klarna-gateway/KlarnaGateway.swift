import ArgumentParser

/// The `klarna-gateway` command: the gateway itself and its administration.
@main
struct KlarnaGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "klarna-gateway",
        abstract: "A reverse proxy in front of Klarna's APIs, and the commands that administer its store.",
        subcommands: [
            Serve.self, Check.self, Partners.self, Merchants.self, Callers.self, Admins.self, Keys.self, Releases.self, Policies.self, AuditCommand.self,
            Migrate.self, StoreCommand.self, Webhooks.self,
        ]
    )
}
