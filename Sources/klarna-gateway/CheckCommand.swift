import ArgumentParser
import Foundation
import GatewayApp

/// `klarna-gateway check`: validates the files `serve` would load, without serving.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the config file, catalogue, policies and certificates without serving; exit 1 if anything is wrong.")

    @OptionGroup var config: ConfigOptions

    func run() throws {
        let report = ConfigCheck.run(path: config.path)
        for line in report.summary { print("ok: \(line)") }
        guard report.isValid else {
            for problem in report.problems { printError("error: \(problem)") }
            printError("check failed: \(report.problems.count) problem(s)")
            throw ExitCode.failure
        }
        print("check passed")
    }
}
