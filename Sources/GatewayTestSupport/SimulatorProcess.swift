import Foundation
import KlarnaSimulator

/// The built `klarna-simulator` run as a process of its own from a configuration, with the two ports it printed:
/// Klarna's side of the end-to-end tests that run the gateway as a process too.
public struct SimulatorProcess: Sendable {
    /// The running simulator.
    public let child: ChildProcess
    /// Its API port (HTTPS with the configuration's TLS).
    public let port: Int
    /// Its control port (plain HTTP).
    public let controlPort: Int

    /// Writes `configuration` to `directory` and starts the simulator on it; returns once it listens.
    public static func start(_ configuration: SimulatorConfiguration, directory: URL) async throws -> SimulatorProcess {
        let path = directory.appendingPathComponent("simulator-\(UUID().uuidString.prefix(8)).json")
        try JSONEncoder().encode(configuration).write(to: path)
        let child = try ChildProcess(ChildProcess.productPath("klarna-simulator"), ["--config", path.path], directory: directory)
        try await child.waitForOutput("klarna-simulator listening")
        let ports = child.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { field -> Int? in
            guard field.hasPrefix("https://127.0.0.1:") || field.hasPrefix("http://127.0.0.1:") else { return nil }
            return Int(field.split(separator: ":").last ?? "")
        }
        guard ports.count == 2 else {
            child.kill(SIGKILL)
            throw ChildProcessError.timedOut("the simulator's two ports in: \(child.stdout)")
        }
        return SimulatorProcess(child: child, port: ports[0], controlPort: ports[1])
    }
}
