import Foundation
@testable import GatewayApp
import GatewayTestSupport
import Testing

/// `event_loops`: how many threads serve calls, as the config loader reads it and as `serve` starts them.
@Suite("Event loops")
struct EventLoopsConfigTests {
    @Test("one per core by default; a number is taken as is; negative is refused; a change waits for a restart")
    func settings() throws {
        let shipped = try ConfigLoader.loadGateway(path: ResilienceConfigTests.path, environment: [:])
        #expect(shipped.eventLoops == 0)
        let one = try ConfigLoader.loadGateway(path: ResilienceConfigTests.path, environment: ["KGW_EVENT_LOOPS": "1"])
        #expect(one.eventLoops == 1)
        #expect(RestartOnlySettings.changed(from: shipped, to: one) == ["event_loops"])
        #expect(RestartOnlySettings.keeping(restartOnly: shipped, rest: one).eventLoops == 0)
        #expect(throws: ConfigError.self) {
            try ConfigLoader.loadGateway(path: ResilienceConfigTests.path, environment: ["KGW_EVENT_LOOPS": "-1"])
        }
    }

    @Test("serve runs exactly the configured number of event-loop threads and answers through them", .timeLimit(.minutes(3)))
    func servedThreads() async throws {
        try await withGateway { gw in
            let served = try await ServedGateway.start(gw, environment: ["KGW_EVENT_LOOPS": "1"])
            let connection = try await RawConnection.open(port: served.loopbackPort, tls: nil)
            await connection.send(http1("GET", seedTransaction, [("Authorization", gw.token("checkout"))]))
            #expect(await connection.response()?.status == 200)
            // NIO names its loop threads NIO-ELT-<group>-#<n>; the call group is the one with the most of them.
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(served.child.process.processIdentifier)/task")
            let names = tasks.compactMap { try? String(contentsOfFile: "/proc/\(served.child.process.processIdentifier)/task/\($0)/comm", encoding: .utf8) }
            let loops = Dictionary(grouping: names.filter { $0.hasPrefix("NIO-ELT-") }) { $0.split(separator: "-#").first ?? "" }
            #expect(loops.values.map(\.count).max() == 1, "event-loop threads: \(names.filter { $0.hasPrefix("NIO-ELT-") })")
            _ = try await served.stop()
        }
    }
}
