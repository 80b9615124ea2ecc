import Foundation
import NIOConcurrencyHelpers

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Not Foundation's `Process`: on Linux its `run()` reads past the end of a directory entry while it counts the
/// parent's open descriptors (swift-corelibs-foundation#5472), and a test process holding a thousand sockets
/// crashed there in CI. Here the child closes every descriptor above 2 with `posix_spawn_file_actions_addclosefrom_np`,
/// so nothing a test holds open (a listening socket, a database) outlives the test in a child.
public final class SpawnedProcess: Sendable {
    /// The child's process id.
    public let processIdentifier: pid_t
    /// The executable's file name, for messages.
    public let executableName: String
    /// The wait status once the child has been reaped; reaping and signalling happen under this lock, so a
    /// signal never reaches a process id the system has already handed to another process.
    private let reaped = NIOLockedValueBox<Int32?>(nil)

    /// Starts `executable` (a path) with `arguments` and exactly `environment`; its standard output and error go
    /// to the files at `stdout` and `stderr` (created or truncated), and `stdin` is written to its standard input,
    /// which is then closed.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String], stdout: String, stderr: String,
        stdin: Data
    ) throws {
        executableName = URL(fileURLWithPath: executable).lastPathComponent
        let output = try Self.openForWriting(stdout)
        defer { close(output) }
        let errors = try Self.openForWriting(stderr)
        defer { close(errors) }
        var input: [Int32] = [-1, -1]
        guard pipe(&input) == 0 else { throw ChildProcessError.spawn("a pipe", errno: errno) }
        for end in input { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, errors, 2)
        guard Self.addCloseFrom(&actions, 3) == 0 else { throw ChildProcessError.spawn(executable, errno: ENOSYS) }

        // Signals the test process ignores or blocks would otherwise stay ignored or blocked in the child.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") }
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv + [nil], envp + [nil])
        close(input[0])
        guard spawned == 0 else {
            close(input[1])
            throw ChildProcessError.spawn(executable, errno: spawned)
        }
        processIdentifier = pid
        stdin.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(input[1], bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 { offset += written } else if errno != EINTR { break }
            }
        }
        close(input[1])
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), looked up at run time because
    /// Swift's Glibc module is imported without `_GNU_SOURCE`, which declares it.
    private static let addCloseFrom: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32 = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            fatalError("posix_spawn_file_actions_addclosefrom_np is missing: glibc 2.34 or later is needed")
        }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    private static func openForWriting(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ChildProcessError.spawn(path, errno: errno) }
        return fd
    }

    /// Whether the child has not exited yet (reaps it when it has).
    public var isRunning: Bool { reaped.withLockedValue { reap(&$0, blocking: false) == nil } }

    /// The exit code, or the number of the signal that ended the child; only once `isRunning` is false.
    public var terminationStatus: Int32 {
        guard let status = reaped.withLockedValue({ reap(&$0, blocking: false) }) else { return -1 }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
    }

    /// Sends `signal` unless the child has already been reaped.
    public func kill(_ signal: Int32) {
        reaped.withLockedValue { status in
            if reap(&status, blocking: false) == nil { _ = Foundation.kill(processIdentifier, signal) }
        }
    }

    private func reap(_ status: inout Int32?, blocking: Bool) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(processIdentifier, &raw, blocking ? 0 : WNOHANG) } while result < 0 && errno == EINTR
        if result == processIdentifier { status = raw } else if result < 0 { status = -1 }
        return status
    }

    deinit {
        // A child outliving its handle is killed and reaped, so it neither runs on nor stays a zombie.
        reaped.withLockedValue { status in
            if reap(&status, blocking: false) == nil {
                _ = Foundation.kill(processIdentifier, SIGKILL)
                _ = reap(&status, blocking: true)
            }
        }
    }
}
