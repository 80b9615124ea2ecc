/// What the health endpoint and logs say about the audit writer.
public struct AuditHealth: Sendable, Equatable {
    /// False from a failed write until the next successful one; calls are refused meanwhile.
    public var isHealthy: Bool = true
    /// The last write error, kept after recovery for the record.
    public var lastError: String?
    /// When the last write error happened, microseconds since the Unix epoch.
    public var lastErrorTimeMicros: Int64?
    /// Batches failed in a row (0 when healthy).
    public var consecutiveFailures: Int = 0
    /// Records waiting for the writer.
    public var queueDepth: Int = 0
    /// Calls refused because the queue was full, since start.
    public var queueFullRefusals: Int = 0
    /// The last committed sequence number.
    public var lastSeq: Int64 = 0
    /// The sequence number of the last checkpoint.
    public var lastCheckpointSeq: Int64 = 0
    /// Set when a checkpoint was stored but could not be appended to the checkpoint file.
    public var checkpointFileError: String?

    /// A fresh, healthy state.
    public init() {}
}
