import Foundation

/// A product binary of this package run as a child process, with its output captured to files so tests can
/// search everything it printed (for planted secrets, for example).
public final class ChildProcess: @unchecked Sendable {
    /// The running process.
    public let process: SpawnedProcess
    /// Where its standard output goes.
    public let stdoutURL: URL
    /// Where its standard error goes.
    public let stderrURL: URL

    /// The path of a product built beside the test bundle (`klarna-gateway`, `klarna-simulator`).
    public static func productPath(_ name: String) -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The xctest bundle may be a directory inside the build folder; walk up until the binary is found.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            directory.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/\(name)").path
    }

    /// Starts `executable` with `arguments`; `stdin` is written to its standard input and closed.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: URL,
        stdin: String? = nil
    ) throws {
        let tag = UUID().uuidString.prefix(8)
        let name = URL(fileURLWithPath: executable).lastPathComponent
        stdoutURL = directory.appendingPathComponent("\(name)-\(tag).out")
        stderrURL = directory.appendingPathComponent("\(name)-\(tag).err")
        process = try SpawnedProcess(
            executable, arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            stdout: stdoutURL.path, stderr: stderrURL.path, stdin: Data((stdin ?? "").utf8))
    }

    /// Runs a command to completion and returns its exit status and output.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: URL,
        stdin: String? = nil, timeout: Duration = .seconds(120)
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(executable, arguments, environment: environment, directory: directory, stdin: stdin)
        let status = try await child.wait(timeout: timeout)
        return (status, child.stdout, child.stderr)
    }

    /// Everything written to standard output so far.
    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    /// Everything written to standard error so far.
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Waits for exit; kills the process and throws when it outlives `timeout`.
    public func wait(timeout: Duration = .seconds(60)) async throws -> Int32 {
        if let status = try await exitStatus(within: timeout) { return status }
        kill(SIGKILL)
        throw ChildProcessError.timedOut(process.executableName)
    }

    /// Waits up to `timeout` for exit and returns the status, or nil (the process left running) when it outlives it.
    public func exitStatus(within timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Every thread's stack, from gdb attached for a moment, for a test to show what a process that does not stop
    /// waits on; nil where gdb is not installed or cannot attach.
    public func threadStacks() async -> String? {
        let gdb = "/usr/bin/gdb"
        guard FileManager.default.isExecutableFile(atPath: gdb), process.isRunning else { return nil }
        let result = try? await ChildProcess.run(
            gdb, ["-batch", "-nx", "-p", "\(process.processIdentifier)", "-ex", "thread apply all bt 24"],
            directory: stdoutURL.deletingLastPathComponent(), timeout: .seconds(60))
        // Only the frames: gdb's own chatter (symbol loading, the attach) says nothing about the hang.
        return result.map { $0.stdout.split(separator: "\n").filter { $0.hasPrefix("Thread ") || $0.hasPrefix("#") }.joined(separator: "\n") }
    }

    /// Waits until standard output or error contains `text`.
    public func waitForOutput(_ text: String, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(stdout.contains(text) || stderr.contains(text)) {
            guard process.isRunning else {
                throw ChildProcessError.exited(process.terminationStatus, stderr: stderr)
            }
            if ContinuousClock.now > deadline { throw ChildProcessError.timedOut("waiting for '\(text)'") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Sends a signal (SIGTERM, SIGKILL, …).
    public func kill(_ signal: Int32) { process.kill(signal) }

    deinit { process.kill(SIGKILL) }
}

/// Why a child process did not do what a test waited for.
public enum ChildProcessError: Error, CustomStringConvertible {
    /// It ran past its deadline and was killed.
    case timedOut(String)
    /// It exited before printing what was awaited.
    case exited(Int32, stderr: String)
    /// It could not be started.
    case spawn(String, errno: Int32)

    /// A readable reason.
    public var description: String {
        switch self {
        case .timedOut(let what): "timed out: \(what)"
        case .exited(let status, let stderr): "exited with status \(status): \(stderr.suffix(2000))"
        case .spawn(let what, let code): "could not start \(what): \(String(cString: strerror(code)))"
        }
    }
}
