import Foundation
@testable import GatewayApp
import GatewayTestSupport
import NIOConcurrencyHelpers
import NIOPosix
import Testing

/// deploy/bin/klarna-gateway-probe, the container health check and the Kubernetes exec probes, run with bash
/// against the gateway's real admin listener on a real loopback socket.
@Suite("Admin listener probe")
struct ProbeScriptTests {
    static let script = DeployFiles.path("deploy/bin/klarna-gateway-probe")

    /// Runs the probe; a generous read timeout because CI is a loaded machine (the probe's own default is 3 s).
    static func probe(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-probe-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await ChildProcess.run("/bin/bash", [script] + arguments, environment: ["PROBE_TIMEOUT_SECONDS": "30"], directory: directory)
    }

    @Test("200 from /healthz and a ready /readyz exit 0; a 503 /readyz exits 1 and prints the reason")
    func answers() async throws {
        let ready = NIOLockedValueBox(false)
        let server = try await AdminServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton) {
            let isReady = ready.withLockedValue { $0 }
            return Readiness(ready: isReady, json: "{\"ready\":\(isReady),\"audit\":{\"last_error\":\"disk full\"}}")
        }
        let port = String(server.port)

        let alive = try await Self.probe([port, "/healthz"])
        #expect(alive.status == 0, "\(alive.stderr)")

        let notReady = try await Self.probe([port, "/readyz"])
        #expect(notReady.status == 1)
        #expect(notReady.stderr.contains("answered 503"))
        #expect(notReady.stderr.contains("disk full"), "the reason should reach the pod's events: \(notReady.stderr)")

        ready.withLockedValue { $0 = true }
        let nowReady = try await Self.probe([port, "/readyz"])
        #expect(nowReady.status == 0, "\(nowReady.stderr)")

        let unknown = try await Self.probe([port, "/nothing-here"])
        #expect(unknown.status == 1 && unknown.stderr.contains("answered 404"))

        await server.stop()
        let gone = try await Self.probe([port, "/healthz"])
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("nothing listens on 127.0.0.1:\(port)"))
    }

    @Test("wrong usage exits 2 without touching the network")
    func usage() async throws {
        let result = try await Self.probe(["/healthz"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("usage: klarna-gateway-probe PORT PATH"))
    }
}
