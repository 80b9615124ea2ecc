import GatewayPostgres
import Logging

/// The `audit:` section of gateway.yaml.
public struct AuditSettings: Sendable, Codable, Equatable {
    /// The audit SQLite file (relative paths are resolved against the config file's directory), or a `postgres://`
    /// URL: one chain per node in a database shared by every instance.
    public var path: String
    /// `commit` (default), `fsync` or `async`.
    public var mode: AuditDurability
    /// Sign a checkpoint after this many records.
    public var checkpointEveryRecords: Int
    /// …or after this many seconds with unsigned records.
    public var checkpointEverySeconds: Double
    /// The file checkpoints are appended to, for shipping elsewhere.
    public var checkpointFile: String?
    /// Records that may wait for the writer before calls are refused.
    public var queueLimit: Int
    /// How long a write may wait for a lock held by another process before it fails.
    public var lockTimeoutSeconds: Double
    /// PostgreSQL: how long a batch retries a lost server before its calls are refused.
    public var retrySeconds: Double

    /// Makes settings; the defaults are the production ones.
    public init(
        path: String = "audit.sqlite", mode: AuditDurability = .commit, checkpointEveryRecords: Int = 10_000,
        checkpointEverySeconds: Double = 60, checkpointFile: String? = "audit-checkpoints.jsonl", queueLimit: Int = 100_000,
        lockTimeoutSeconds: Double = 2, retrySeconds: Double = 5
    ) {
        self.path = path
        self.mode = mode
        self.checkpointEveryRecords = checkpointEveryRecords
        self.checkpointEverySeconds = checkpointEverySeconds
        self.checkpointFile = checkpointFile
        self.queueLimit = queueLimit
        self.lockTimeoutSeconds = lockTimeoutSeconds
        self.retrySeconds = retrySeconds
    }

    enum CodingKeys: String, CodingKey {
        case path, mode
        case checkpointEveryRecords = "checkpoint_every_records"
        case checkpointEverySeconds = "checkpoint_every_seconds"
        case checkpointFile = "checkpoint_file"
        case queueLimit = "queue_limit"
        case lockTimeoutSeconds = "lock_timeout_seconds"
        case retrySeconds = "retry_seconds"
    }

    /// Decodes with every key optional, falling back to the defaults.
    public init(from decoder: any Decoder) throws {
        let defaults = AuditSettings()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        path = try container.decodeIfPresent(String.self, forKey: .path) ?? defaults.path
        mode = try container.decodeIfPresent(AuditDurability.self, forKey: .mode) ?? defaults.mode
        checkpointEveryRecords = try container.decodeIfPresent(Int.self, forKey: .checkpointEveryRecords) ?? defaults.checkpointEveryRecords
        checkpointEverySeconds = try container.decodeIfPresent(Double.self, forKey: .checkpointEverySeconds) ?? defaults.checkpointEverySeconds
        checkpointFile = try container.decodeIfPresent(String.self, forKey: .checkpointFile) ?? defaults.checkpointFile
        queueLimit = try container.decodeIfPresent(Int.self, forKey: .queueLimit) ?? defaults.queueLimit
        lockTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .lockTimeoutSeconds) ?? defaults.lockTimeoutSeconds
        retrySeconds = try container.decodeIfPresent(Double.self, forKey: .retrySeconds) ?? defaults.retrySeconds
    }
}

extension AuditWriter {
    /// Starts a writer from the config section; `resolve` turns relative paths into absolute ones (a URL is kept).
    public convenience init(
        settings: AuditSettings, nodeID: String, signer: AuditSigner, resolve: (String) -> String = { $0 },
        logger: Logger = Logger(label: "audit")
    ) {
        self.init(
            path: PostgresURL.isPostgresURL(settings.path) ? settings.path : resolve(settings.path), nodeID: nodeID, mode: settings.mode, signer: signer,
            checkpointEveryRecords: settings.checkpointEveryRecords, checkpointEverySeconds: settings.checkpointEverySeconds,
            checkpointFile: settings.checkpointFile.map(resolve), queueLimit: settings.queueLimit,
            lockTimeout: settings.lockTimeoutSeconds, retryWindow: settings.retrySeconds, logger: logger
        )
    }
}
