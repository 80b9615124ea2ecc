import Dispatch
import Foundation
import GRDB
import GRDBSQLite
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// Copies the audit store's write-ahead log into the database file on a connection and thread of its own, so the
/// writer's commits never wait for a checkpoint.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 log pages, on the committing
/// connection: a sync of the log, the copy, and a sync of the database file. Every call whose record was in the
/// batches behind it waited for both syncs (about 17 ms each on the benchmark machine's disk, twice a second
/// under load): that was most of the p99 the audit trail added. Here the writer's connection only reports its
/// log's length (`sqlite3_wal_hook`, which also turns the automatic checkpoint off) and this checkpointer copies
/// in `PASSIVE` mode, which never blocks the writer. A log the writer keeps appending to is never wholly copied
/// at the moment a new transaction starts, so SQLite would never start it over; once it holds `restartFrames`,
/// a `RESTART` checkpoint takes the writer's turn between two commits (`commitTurn`: SQLite's own lock, polled by
/// a busy handler, would rarely catch the gap between back-to-back commits), copies the few pages the passive
/// one left, and makes the next commit write from the log's start. The writer then waits for one such short checkpoint per
/// `restartFrames` pages instead of a full one per 1,000. SQLite syncs the database file only in a checkpoint that
/// copies the whole log, which under load is only that restart: everything the passive ones had copied since the
/// last restart was then synced inside the writer's turn (65–125 ms on the benchmark machine, most of `commit`'s
/// p99). So each passive checkpoint is followed by a sync of the database file here, off the writer's turn, and the
/// restart is preceded by one more of each: the writer waits only for what it committed in those milliseconds. The
/// sync goes through SQLite's own handle of the file (a descriptor of the checkpointer's own would, once closed,
/// drop every POSIX lock the process holds on the file, other connections' included). A sync that fails stops the
/// checkpoints for good: a later sync could report success over pages the kernel failed to write, and a restart
/// would then discard the only good copy of them, in the log. Durability is unchanged: a commit is durable in the
/// log (`commit`: against a crash of the process, `fsync`: against power loss) whoever copies it later.
final class AuditWALCheckpointer: @unchecked Sendable {
    // @unchecked: `database` and `syncFailed` are used on `queue` only; `pending` is atomic.

    /// Log pages written since the last checkpoint after which the writer asks for the next (SQLite's own
    /// default threshold).
    let passiveFrames: Int32
    /// Log pages after which the log is started over (64 MiB of 4 KiB pages by default).
    let restartFrames: Int
    /// Log pages past which the writer checkpoints by itself, as SQLite would: a stalled checkpointer must not
    /// let the log grow without bound.
    static let writerFallbackFrames: Int32 = 64_000

    private let database: DatabaseQueue
    /// Set once a sync of the database file failed: no checkpoint runs after it.
    private var syncFailed = false
    private let logger: Logger
    private let queue = DispatchQueue(label: "audit-wal-checkpointer")
    private let pending = Atomic<Bool>(false)
    /// Held by the writer for each commit and by a restart: a restart then never waits on SQLite's write lock.
    private let turn = NIOLock()
    /// The log's length when the last checkpoint started (0 after a restart): the hook asks for the next one
    /// only once `passiveFrames` more were written, not after every commit.
    private let copiedFrames = Atomic<Int32>(0)
    /// Checkpoints run, syncs of the database file after them, restarts put off because a reader (an `audit export`,
    /// say) still read the log, and the last failure.
    private let stats = Mutex<(passive: Int, syncs: Int, restarts: Int, deferred: Int, lastError: String?)>((0, 0, 0, 0, nil))

    /// Opens a connection of its own to the store at `path`, whose writer already made it a WAL database.
    /// `restartWait` bounds how long a restart waits for the writer's commit and for readers: while it waits, the
    /// writer cannot begin its next commit, so it is short, and a restart that could not happen is tried again
    /// after the next `passiveFrames` pages.
    init(
        path: String, logger: Logger, restartWait: TimeInterval = 0.1, passiveFrames: Int32 = 1_000, restartFrames: Int = 16_000
    ) throws {
        self.logger = logger
        self.passiveFrames = passiveFrames
        self.restartFrames = restartFrames
        var configuration = Configuration()
        configuration.busyMode = .timeout(restartWait)
        configuration.label = "audit-checkpointer"
        database = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Makes `connection` report its log's length here after each commit; SQLite's automatic checkpoint on that
    /// connection is off from then on. Call on the connection's own thread, before it writes.
    func watch(_ connection: OpaquePointer) {
        sqlite3_wal_hook(connection, { context, connection, _, frames in
            guard let context else { return SQLITE_OK }
            let checkpointer = Unmanaged<AuditWALCheckpointer>.fromOpaque(context).takeUnretainedValue()
            let copied = checkpointer.copiedFrames.load(ordering: .relaxed)
            // A log shorter than what was copied has started over.
            if frames - (frames < copied ? 0 : copied) >= checkpointer.passiveFrames { checkpointer.nudge() }
            if frames >= AuditWALCheckpointer.writerFallbackFrames {
                sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Stops reporting to this checkpointer; call before the checkpointer goes away, on the connection's thread.
    static func unwatch(_ connection: OpaquePointer) {
        sqlite3_wal_hook(connection, nil, nil)
    }

    /// Runs one of the writer's commits; a restart waits for it to end rather than polling SQLite's lock.
    func commitTurn<T>(_ commit: () throws -> T) rethrows -> T {
        try turn.withLock(commit)
    }

    /// Asks for a checkpoint; one already asked for and not yet started covers this one.
    func nudge() {
        guard !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { self.run() }
    }

    /// Waits until every checkpoint asked for so far has run.
    func settle() {
        queue.sync {}
    }

    /// Passive checkpoints, syncs of the database file and restarts run so far, restarts put off, and the last failure.
    var counts: (passive: Int, syncs: Int, restarts: Int, deferred: Int, lastError: String?) { stats.withLock { $0 } }

    /// Closes the connection once the checkpoints asked for have run.
    func close() {
        queue.sync { try? database.close() }
    }

    private func run() {
        pending.store(false, ordering: .releasing)
        guard !syncFailed else { return }
        do {
            let passive = try copyAndSync()
            if passive.logFrames >= restartFrames {
                // Once more, so that the restart, which holds the writer's commits, copies and syncs only what was
                // committed during this second copy and sync.
                _ = try copyAndSync()
                if try turn.withLock({ try checkpoint("RESTART") }).busy {
                    let deferred = stats.withLock { stats in
                        stats.deferred += 1
                        return stats.deferred
                    }
                    // Once, and then every hundredth time: a reader left open (an export) keeps the log growing.
                    if deferred % 100 == 1 {
                        logger.warning(
                            "audit log not started over: a reader of the audit store is still open; the -wal file grows until it closes",
                            metadata: ["wal_pages": "\(passive.logFrames)"])
                    }
                } else {
                    copiedFrames.store(0, ordering: .relaxed)
                    stats.withLock { $0.restarts += 1 }
                }
            }
            let recovered = stats.withLock { stats in
                defer { stats.lastError = nil }
                return stats.lastError != nil
            }
            if recovered { logger.notice("audit log checkpoints work again") }
        } catch let failure as SyncFailure {
            syncFailed = true
            stats.withLock { $0.lastError = failure.description }
            logger.critical(
                "audit store file could not be synced: checkpoints stopped, so the log keeps every record since; check the disk, then restart the gateway",
                metadata: ["error": "\(failure)"])
        } catch {
            // The writer's fallback bounds the log meanwhile; the next nudge tries again.
            let first = stats.withLock { stats in
                defer { stats.lastError = String(describing: error) }
                return stats.lastError == nil
            }
            if first { logger.error("audit log checkpoint failed; the writer checkpoints by itself past 64,000 pages", metadata: ["error": "\(error)"]) }
        }
    }

    /// A passive checkpoint, then the database file synced outside the writer's turn: the log's length in pages.
    private func copyAndSync() throws -> (busy: Bool, logFrames: Int) {
        let passive = try checkpoint("PASSIVE")
        copiedFrames.store(Int32(clamping: passive.logFrames), ordering: .relaxed)
        stats.withLock { $0.passive += 1 }
        try syncDatabaseFile()
        stats.withLock { $0.syncs += 1 }
        return passive
    }

    /// A sync of the database file that failed: the kernel may not have written what the checkpoints copied.
    private struct SyncFailure: Error, CustomStringConvertible {
        let code: Int32
        var description: String { "sync of the audit store failed (SQLite error \(code))" }
    }

    /// Syncs the database file through this connection's own handle of it, as SQLite's checkpoint would.
    private func syncDatabaseFile() throws {
        try database.writeWithoutTransaction { db in
            var file: UnsafeMutablePointer<sqlite3_file>?
            let found = sqlite3_file_control(db.sqliteConnection, "main", SQLITE_FCNTL_FILE_POINTER, &file)
            guard found == SQLITE_OK, let file, let sync = file.pointee.pMethods?.pointee.xSync else {
                throw SyncFailure(code: found)
            }
            let synced = sync(file, SQLITE_SYNC_NORMAL)
            guard synced == SQLITE_OK else { throw SyncFailure(code: synced) }
        }
    }

    /// Runs `PRAGMA wal_checkpoint(mode)`: whether it could not finish within `restartWait` (a restart only: the
    /// writer's lock or a reader), and the log's length in pages when it ran.
    private func checkpoint(_ mode: String) throws -> (busy: Bool, logFrames: Int) {
        try database.writeWithoutTransaction { db in
            // The row is (busy, log pages, pages copied).
            guard let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(\(mode))") else { return (false, 0) }
            return ((row[0] as Int? ?? 0) != 0, row[1] as Int? ?? 0)
        }
    }
}
