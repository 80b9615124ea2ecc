import ArgumentParser
import Foundation
import GatewayApp
import Logging
import ServiceLifecycle

/// `klarna-gateway serve`: run the gateway until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the gateway: listeners, reload loop, upstream pools.")

    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await reportingErrors {
            let configuration = try config.load()
            LoggingSystem.bootstrap(JSONLogHandler.init)
            JSONLogHandler.setLevel(Logger.Level(rawValue: configuration.logLevel) ?? .info)
            var logger = Logger(label: "klarna-gateway")
            logger[metadataKey: "node"] = "\(configuration.nodeID)"
            let credentials = try await CredentialLoader.open(config: configuration)
            let service = try await GatewayService.start(
                config: configuration, credentials: credentials, journal: AccessLogJournal(logger: logger), logger: logger)
            // One line on stdout whatever the log level, for scripts and supervisors waiting for readiness.
            let ports = service.ports.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            FileHandle.standardOutput.write(Data("klarna-gateway serving \(ports)\n".utf8))
            let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        }
    }
}
