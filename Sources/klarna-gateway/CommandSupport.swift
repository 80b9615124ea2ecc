import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// Options every admin command takes.
struct ConfigOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "The gateway configuration file.")
    var path = "config/gateway.yaml"

    /// The loaded configuration: by default only what the store commands use (`ConfigScope`).
    func load(_ scope: ConfigScope = .administration) throws -> GatewayConfig { try ConfigLoader.loadGateway(path: path, scope: scope) }

    /// The admin service over the configured store and key ring.
    func admin() async throws -> AdminService { try await AdminService.open(config: load()) }
}

/// Runs a command body, turning any error into one line on stderr and exit status 1.
///
/// Errors here are operator mistakes or refusals, not crashes: no stack trace, no usage text, and messages
/// that never carry a secret (the admin layer guarantees that).
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("error: \(error)")
        throw ExitCode.failure
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Reads secrets from files or standard input (`-`), never from the command line where `ps` and shell
/// history would keep them.
enum SecretInput {
    /// A secret's text, surrounding whitespace removed.
    static func read(_ path: String, what: String) throws -> Secret {
        Secret(try text(path, what: what).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A file's text, or standard input's for `-`.
    static func text(_ path: String, what: String) throws -> String {
        let data: Data?
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            data = FileManager.default.contents(atPath: path)
        }
        guard let data, let text = String(data: data, encoding: .utf8) else {
            throw ValidationFailure("cannot read the \(what) from \(path == "-" ? "standard input" : path)")
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ValidationFailure("the \(what) in \(path == "-" ? "standard input" : path) is empty")
        }
        return text
    }

    /// Refuses more than one `-`: standard input can be read once.
    static func checkOneStdin(_ paths: String?...) throws {
        if paths.filter({ $0 == "-" }).count > 1 {
            throw ValidationFailure("only one secret can be read from standard input (-)")
        }
    }
}

/// A refusal found by the command itself, before the admin layer.
struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
