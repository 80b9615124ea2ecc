import Foundation
import GatewayCore
import GRDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The embedded store: one SQLite file in WAL mode, shared by the running gateways and the admin CLI.
///
/// Every write bumps a `generation` counter in the same transaction; gateways poll it and reload. WAL lets the
/// CLI write while gateways read, and a new read transaction always sees the latest commit of any process.
public final class SQLiteStore: GatewayStore {
    /// The database file.
    public let path: String
    let pool: DatabasePool

    /// Opens (creating with mode 0600 if needed) the database at `path`; call `migrate()` before use.
    public init(path: String) throws {
        self.path = path
        try SQLiteStore.prepareFile(at: path)
        var configuration = Configuration()
        // Gateways and the CLI are separate processes: wait for a writer instead of failing at once.
        configuration.busyMode = .timeout(10)
        configuration.label = "klarna-gateway store"
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw StoreError("cannot open the store \(path): \(error)")
        }
        // SQLite gives -wal and -shm the main file's mode; tightening again covers files left by older runs.
        for suffix in ["", "-wal", "-shm"] { SQLiteStore.restrict(path + suffix) }
    }

    /// Opens the store at `path` and migrates it to the current schema.
    public static func open(path: String) async throws -> SQLiteStore {
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        return store
    }

    /// Creates the file 0600 before SQLite sees it, so the database is never readable by others, even briefly.
    static func prepareFile(at path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw StoreError("cannot create the store directory \(directory): \(error.localizedDescription)")
            }
        }
        // An existing file is left alone: closing a descriptor of a file drops every POSIX lock the process holds on
        // it, those of SQLite's connections included, and a process that opens the store twice (a test harness) would
        // then let another process (the CLI) take the file as unused, checkpoint and reset the log under its readers.
        if FileManager.default.fileExists(atPath: path) { return restrict(path) }
        let fd = posixOpen(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw StoreError("cannot create the store \(path): \(String(cString: strerror(errno)))") }
        close(fd)
        restrict(path)
    }

    /// Sets mode 0600 on a file if it exists.
    static func restrict(_ path: String) {
        _ = chmod(path, 0o600)
    }
}

/// `open(2)`, named apart from `SQLiteStore.open(path:)`.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    #if canImport(Darwin)
    return Darwin.open(path, flags, mode)
    #elseif canImport(Musl)
    return Musl.open(path, flags, mode)
    #else
    return Glibc.open(path, flags, mode)
    #endif
}
