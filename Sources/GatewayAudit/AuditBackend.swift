import Foundation

/// Where a chain stands when its writer (re)opens the store: the next record is `lastSeq + 1`, chained from
/// `lastHash`.
struct AuditChainHead: Sendable, Equatable {
    var lastSeq: Int64
    var lastHash: String
    var lastCheckpointSeq: Int64

    static let empty = AuditChainHead(lastSeq: 0, lastHash: AuditCanonical.genesisHash, lastCheckpointSeq: 0)
}

/// The storage engine under `AuditWriter`: the writer keeps the queue, the chain and the checkpoints; a backend
/// only opens, appends in one transaction and closes. Called from the writer's serial worker only, which may block.
protocol AuditBackend: AnyObject {
    /// Opens the store (creating or migrating its schema) and reads this node's chain head.
    func open() throws -> AuditChainHead
    /// Appends the records (in sequence order across the segments, one segment per event loop's batch) with
    /// their places in the chain (`links`) and, when given, `checkpoint` in one transaction: all or nothing.
    func append(_ segments: [AuditPackedRecords], links: AuditChainLinks, checkpoint: AuditCheckpoint?) throws
    /// Closes the store; the next `open` starts again and re-reads the chain head.
    func close()
    /// Whether the writer closes the store after a failed append. A server connection that failed may be dead,
    /// and a commit whose answer was lost may have landed, so it is reopened and the head re-read; a SQLite file
    /// that is full or locked is not the connection's fault, and the failed transaction rolled back.
    var closesAfterFailure: Bool { get }
}
