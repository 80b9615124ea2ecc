import Foundation
import GRDB

/// Why an audit operation failed; the data plane only needs to know that it did, operators need the reason.
public enum AuditError: Error, CustomStringConvertible, Sendable {
    /// The bounded queue is full: the store is not keeping up.
    case queueFull(limit: Int)
    /// The store cannot be written (read-only, full, locked past the deadline, missing directory…).
    case unavailable(String)
    /// The writer has been shut down.
    case shutDown
    /// A file could not be read or written.
    case io(String)

    /// A one-line explanation for logs and the health endpoint.
    public var description: String {
        switch self {
        case .queueFull(let limit): "audit queue full (\(limit) records pending)"
        case .unavailable(let reason): "audit store unavailable: \(reason)"
        case .shutDown: "audit writer shut down"
        case .io(let reason): reason
        }
    }
}

/// How much a committed record survives; chosen per deployment in `audit.mode`.
public enum AuditDurability: String, Sendable, Codable, CaseIterable {
    /// Committed to the WAL before the call proceeds (`synchronous=NORMAL`): survives a process crash.
    case commit
    /// Committed and fsync'd (`synchronous=FULL`): survives power loss.
    case fsync
    /// Acknowledged on enqueue: may lose the last batch on a crash. Benchmarks and test environments only.
    case async
}

/// Opens the audit file and owns its schema.
enum AuditDatabase {
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE audit_records (
                    seq INTEGER PRIMARY KEY,
                    \(AuditEntry.columnDefinitions(integer: "INTEGER", of: AuditEntry.fieldNames.dropFirst())),
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE INDEX audit_records_time ON audit_records(time_us);
                CREATE TABLE audit_checkpoints (
                    seq INTEGER PRIMARY KEY,
                    node_id TEXT NOT NULL,
                    time_us INTEGER NOT NULL,
                    hash TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    public_key TEXT NOT NULL,
                    signature TEXT NOT NULL
                );
                CREATE TABLE audit_anchor (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    seq INTEGER NOT NULL,
                    node_id TEXT NOT NULL,
                    time_us INTEGER NOT NULL,
                    hash TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    public_key TEXT NOT NULL,
                    signature TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("time-marks") { db in try db.execute(sql: AuditTimeMarks.migrationSQL) }
        // Records from before hash the JSON text; the writer's are `v2` from here on.
        migrator.registerMigration("canonical-version") { db in
            try db.execute(sql: "ALTER TABLE audit_records ADD COLUMN canonical_version INTEGER NOT NULL DEFAULT 1")
        }
        return migrator
    }

    /// Opens for writing, creating the file with mode 0600 first (SQLite gives the WAL and shm files the same mode).
    static func openForWriting(path: String, durability: AuditDurability, lockTimeout: TimeInterval) throws -> DatabaseQueue {
        if !FileManager.default.fileExists(atPath: path) {
            let fd = open(path, O_WRONLY | O_CREAT, 0o600)
            guard fd >= 0 else { throw AuditError.unavailable("cannot create \(path): \(String(cString: strerror(errno)))") }
            close(fd)
        }
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(lockTimeout)
        configuration.label = "audit-writer"
        let synchronous = durability == .fsync ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        try migrator().migrate(queue)
        return queue
    }

    /// Opens for reading only: verify, export and stats never take the write lock.
    static func openForReading(path: String) throws -> DatabaseQueue {
        guard FileManager.default.fileExists(atPath: path) else { throw AuditError.io("no audit store at \(path)") }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        configuration.label = "audit-reader"
        configuration.prepareDatabase { db in try showVersionColumn(db) }
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    /// A store no writer of this version has opened yet has no `canonical_version` column, and a reader may not
    /// add it: a view of the same name in the connection's own `temp` schema (which names resolve to first)
    /// shows its records as `v1`, what they are, so every reader's queries stay as they are.
    private static func showVersionColumn(_ db: Database) throws {
        guard try db.tableExists("audit_records"),
            try !db.columns(in: "audit_records").contains(where: { $0.name == "canonical_version" })
        else { return }
        try db.execute(sql: "CREATE TEMP VIEW audit_records AS SELECT *, 1 AS canonical_version FROM main.audit_records")
    }

    /// Opens for maintenance (prune): writable, but never creates a store.
    static func openForMaintenance(path: String) throws -> DatabaseQueue {
        guard FileManager.default.fileExists(atPath: path) else { throw AuditError.io("no audit store at \(path)") }
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(10)
        configuration.label = "audit-maintenance"
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        try migrator().migrate(queue)
        return queue
    }
}

extension AuditCheckpoint {
    init(row: Row) {
        self.init(
            nodeID: row["node_id"], seq: row["seq"], timeMicros: row["time_us"], hash: row["hash"], keyID: row["key_id"],
            publicKey: row["public_key"], signature: row["signature"]
        )
    }

    var insertArguments: StatementArguments {
        [seq, nodeID, timeMicros, hash, keyID, publicKey, signature]
    }

    static let insertSQL =
        "INSERT OR REPLACE INTO audit_checkpoints (seq, node_id, time_us, hash, key_id, public_key, signature) VALUES (?,?,?,?,?,?,?)"
}
