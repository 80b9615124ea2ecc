import Foundation

/// A PostgreSQL server of one test's own, which the test may crash and restart: the shared server bin/with-postgres
/// starts must stay up for every other test. Same set-up as bin/with-postgres (Debian's binaries, trust on loopback,
/// run as the `postgres` user when the tests run as root, which PostgreSQL refuses), on a port fixed for its life so
/// that clients reconnect to the restarted server.
public final class PostgresCluster: @unchecked Sendable {
    /// The loopback port, the same across restarts.
    public let port: Int
    /// The data directory's parent, removed by `destroy`.
    public let directory: URL
    private let binaries: String

    /// The superuser's URL for database `name`.
    public func url(database name: String = "postgres") -> String { "postgres://postgres@127.0.0.1:\(port)/\(name)" }

    /// Initializes and starts a new cluster.
    public static func start() async throws -> PostgresCluster {
        let cluster = try await PostgresCluster()
        try await cluster.start()
        return cluster
    }

    private init() async throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.sorted(by: { $0.compare($1, options: .numeric) == .orderedAscending }).last else {
            throw ChildProcessError.exited(69, stderr: "no PostgreSQL server under /usr/lib/postgresql; install Debian's postgresql package")
        }
        binaries = "/usr/lib/postgresql/\(version)/bin"
        directory = URL(fileURLWithPath: "/tmp/kgw-pgcluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        if getuid() == 0 { try await Self.checked("/bin/chown", ["postgres:", directory.path], in: directory) }
        try await run("initdb", ["-D", dataPath, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
    }

    private var dataPath: String { directory.appendingPathComponent("data").path }

    /// Starts (or restarts) the server and waits until it accepts connections.
    public func start() async throws {
        try await run("pg_ctl", [
            "-D", dataPath, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60",
            "-o", "-p \(port) -c listen_addresses=127.0.0.1 -k \(directory.path) -c max_connections=200 -c shared_buffers=32MB",
            "start",
        ])
    }

    /// Stops the server the way a crash does (`pg_ctl stop -m immediate`: every process quits at once, no
    /// checkpoint, WAL recovery at the next start); connections break with no goodbye.
    public func crash() async throws {
        try await run("pg_ctl", ["-D", dataPath, "-m", "immediate", "stop"])
    }

    /// Stops the server if it runs and removes its files.
    public func destroy() async {
        _ = try? await run("pg_ctl", ["-D", dataPath, "-m", "immediate", "stop"])
        try? FileManager.default.removeItem(at: directory)
    }

    /// The server's log, for failure messages.
    public var log: String { (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? "" }

    /// Runs a server tool, as the `postgres` user when the tests run as root (the server refuses root).
    private func run(_ tool: String, _ arguments: [String]) async throws {
        let command = (getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] : []) + ["\(binaries)/\(tool)"] + arguments
        try await Self.checked(command[0], Array(command.dropFirst()), in: directory)
    }

    private static func checked(_ executable: String, _ arguments: [String], in directory: URL) async throws {
        let outputs = FileManager.default.temporaryDirectory
        let result = try await ChildProcess.run(executable, arguments, directory: outputs, timeout: .seconds(120))
        guard result.status == 0 else {
            throw ChildProcessError.exited(result.status, stderr: "\(executable) \(arguments.joined(separator: " ")): \(result.stderr)\(result.stdout)")
        }
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ChildProcessError.exited(errno, stderr: "socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw ChildProcessError.exited(errno, stderr: "bind") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
