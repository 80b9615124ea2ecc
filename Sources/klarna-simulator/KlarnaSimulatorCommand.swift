import ArgumentParser
import Dispatch
import Foundation
import KlarnaSimulator

/// `klarna-simulator`: the offline Klarna Network test environment.
@main
struct KlarnaSimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "klarna-simulator",
        abstract: "An offline stand-in for Klarna's test environment (HTTPS + mTLS, stateful payment flows, webhooks).",
        subcommands: [Run.self, Init.self, Bench.self],
        defaultSubcommand: Run.self
    )
}

/// Runs the simulator until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the simulator (the default subcommand).")

    @Option(name: .long, help: "The simulator's YAML configuration.")
    var config: String

    func run() async throws {
        let configuration = try SimulatorConfiguration.load(from: config)
        let server = try await KlarnaSimulatorServer.start(configuration: configuration, group: nil)
        print("klarna-simulator listening on https://127.0.0.1:\(server.port) control http://127.0.0.1:\(server.controlPort)")
        fflush(nil)  // stdout may be a file or pipe; the waiting process needs the line now
        await Self.waitForTermination()
        try await server.shutdown()
        print("klarna-simulator stopped")
        fflush(nil)  // stdout may be a file or pipe; the waiting process needs the line now
    }

    /// Suspends until SIGTERM or SIGINT arrives.
    static func waitForTermination() async {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        for await _ in stream { break }
        for source in sources { source.cancel() }
    }
}

/// Writes a CA, certificates, a test API key and a configuration into a directory.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a ready-to-run simulator directory (PKI, API key, simulator.yaml).")

    @Option(name: .long, help: "Directory to write into (created if missing).")
    var dir: String

    @Option(name: .long, help: "Number of merchants M1..MN to seed.")
    var merchants: Int = 3

    @Option(name: .long, help: "HTTPS port to configure (0 = any free port).")
    var port: Int = 0

    @Option(name: .customLong("control-port"), help: "Control port to configure (0 = any free port).")
    var controlPort: Int = 0

    @Option(name: .customLong("catalogue-file"), help: "Operation catalogue to reference (default: found from the working directory).")
    var catalogueFile: String?

    func validate() throws {
        guard merchants >= 1 else { throw ValidationError("--merchants must be at least 1") }
        guard (0...65535).contains(port), (0...65535).contains(controlPort) else { throw ValidationError("ports must be 0...65535") }
    }

    func run() throws {
        let catalogue = catalogueFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let result = try SimulatorInit.write(directory: dir, merchants: merchants, port: port, controlPort: controlPort, catalogueFile: catalogue)
        print("klarna-simulator init wrote into \(dir):")
        for file in result.files { print("  \(file)") }
        print("run: klarna-simulator --config \(result.configurationPath)")
    }
}

/// Measures the simulator's throughput with mTLS keep-alive connections (wrk cannot send a client certificate).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Load-test a running simulator: GET one path over N mTLS keep-alive connections.")

    @Option(name: .long, help: "Directory written by `init` (ca.pem, acquirer.pem, acquirer.key, acquirer-api-key).")
    var dir: String

    @Option(name: .long, help: "Simulator HTTPS port.")
    var port: Int

    @Option(name: .long, help: "Path to GET (default: the seeded transaction of M1).")
    var path = "/v2/accounts/krn:partner:global:account:test:M1/payment/transactions/krn:payment:eu1:transaction:seed-M1"

    @Option(name: .long, help: "Concurrent connections.")
    var connections = 32

    @Option(name: .long, help: "Seconds to run.")
    var duration = 10

    @Option(name: .long, help: "Client event loops.")
    var threads = 1

    func run() async throws {
        let base = URL(fileURLWithPath: dir)
        func read(_ name: String) throws -> String { try String(contentsOf: base.appendingPathComponent(name), encoding: .utf8) }
        let key = try read("acquirer-api-key").trimmingCharacters(in: .whitespacesAndNewlines)
        let plan = SimulatorLoadGenerator.Plan(
            host: "127.0.0.1", port: port, path: path, headers: [("Authorization", "Basic \(key)")], connections: connections,
            seconds: duration, trustRootsPEM: try read("ca.pem"), certificatePEM: try read("acquirer.pem"), keyPEM: try read("acquirer.key")
        )
        let result = try await SimulatorLoadGenerator.run(plan, threads: threads)
        print(result)
    }
}
