import Foundation
import GatewayTestSupport
import Testing

/// The tests' own child processes: exit codes, signals, standard streams, and no inherited descriptors.
@Suite struct SpawnedProcessTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    @Test func theExitCodeTheStreamsAndTheInputReachTheTest() async throws {
        let result = try await ChildProcess.run(
            "/bin/sh", ["-c", #"read line; echo "got $line $GREETING"; echo oops >&2; exit 7"#],
            environment: ["GREETING": "hej"], directory: directory, stdin: "hello\n")
        #expect(result.status == 7)
        #expect(result.stdout == "got hello hej\n")
        #expect(result.stderr == "oops\n")
    }

    @Test func aSignalledChildReportsItsSignal() async throws {
        let child = try ChildProcess("/bin/sleep", ["30"], directory: directory)
        #expect(child.process.isRunning)
        child.kill(SIGTERM)
        #expect(try await child.wait(timeout: .seconds(10)) == SIGTERM)
        #expect(!child.process.isRunning)
    }

    /// Descriptors the test process holds open without close-on-exec (sockets and files of other tests running
    /// at the same time) must not reach a child, where they would keep a port bound or a file open after the test.
    @Test func aChildInheritsOnlyItsThreeStandardDescriptors() async throws {
        let held = (0..<300).map { _ in open("/dev/null", O_RDONLY) }
        defer { held.forEach { close($0) } }
        #expect(held.allSatisfy { $0 > 2 })
        for _ in 0..<20 {
            let result = try await ChildProcess.run("/bin/sh", ["-c", "ls /proc/$$/fd"], directory: directory)
            #expect(result.status == 0)
            #expect(result.stdout.split(separator: "\n").sorted() == ["0", "1", "2"], "\(result.stdout)")
        }
    }

    @Test func aMissingExecutableIsAnErrorNotACrash() throws {
        #expect(throws: ChildProcessError.self) { try ChildProcess("/nonexistent/tool", [], directory: directory) }
    }
}
