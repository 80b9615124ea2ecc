import Foundation
import GRDB
import GatewayPostgres
import Logging
import NIOCore
import PostgresNIO

/// The audit trail in a shared PostgreSQL database: this node's chain, written over one dedicated connection.
///
/// The connection holds a session advisory lock on the node id, so two gateways configured with the same
/// `node_id` cannot interleave one chain: the second one's writes fail (and its calls are refused) with a
/// reason naming the node. The lock dies with the connection, so a restarted server or gateway takes it again.
final class AuditPostgresBackend: AuditBackend {
    private let urlText: String
    private let nodeID: String
    private let durability: AuditDurability
    private let logger: Logger
    private var connection: PostgresConnection?
    /// Set by the first `open`; names the server (password hidden) in errors.
    private var url: PostgresURL?

    init(url: String, nodeID: String, durability: AuditDurability, logger: Logger) {
        self.urlText = url
        self.nodeID = nodeID
        self.durability = durability
        self.logger = logger
    }

    var closesAfterFailure: Bool { true }

    /// `commit` survives a gateway crash and a server crash (`synchronous_commit = local`: flushed on the
    /// primary); `fsync` also waits for the synchronous standbys the server is configured with (`on`).
    private var synchronousCommit: String { durability == .fsync ? "on" : "local" }

    func open() throws -> AuditChainHead {
        close()
        let url = try PostgresURL(urlText)
        self.url = url
        let connection = try PostgresConnection.blockingConnect(url, id: 1, logger: logger)
        do {
            try run(connection, PostgresQuery(unsafeSQL: "SET synchronous_commit = \(synchronousCommit)"))
            try AuditPostgresSchema.migrate(connection, logger: logger)
            let locked = try run(connection, "SELECT pg_try_advisory_lock(hashtextextended('klarna-gateway audit chain ' || \(nodeID), 0))")
            guard try locked.first?.decode(Bool.self) == true else {
                throw AuditError.unavailable(
                    "another gateway is writing the audit chain of node \(nodeID); every instance needs its own node_id")
            }
            let head = try head(connection)
            self.connection = connection
            return head
        } catch {
            try? connection.close().wait()
            throw PostgresStore.storeError(error, url: url)
        }
    }

    @discardableResult
    private func run(_ connection: PostgresConnection, _ query: PostgresQuery) throws -> [PostgresRow] {
        try connection.blockingQuery(query, logger: logger)
    }

    private func head(_ connection: PostgresConnection) throws -> AuditChainHead {
        var head = AuditChainHead.empty
        let checkpoint = try run(connection, "SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints WHERE node_id = \(nodeID)")
        head.lastCheckpointSeq = try checkpoint.first?.decode(Int64.self) ?? 0
        if let last = try run(connection, "SELECT seq, hash FROM audit_records WHERE node_id = \(nodeID) ORDER BY seq DESC LIMIT 1").first {
            (head.lastSeq, head.lastHash) = try last.decode((Int64, String).self)
        } else if let anchor = try run(connection, "SELECT seq, hash FROM audit_anchors WHERE node_id = \(nodeID)").first {
            (head.lastSeq, head.lastHash) = try anchor.decode((Int64, String).self)
            head.lastCheckpointSeq = max(head.lastCheckpointSeq, head.lastSeq)
        }
        return head
    }

    /// Rows per INSERT: 36 parameters each, under PostgreSQL's 65,535 bind limit.
    static let rowsPerStatement = 1_000

    func append(_ rows: [AuditChainedRow], checkpoint: AuditCheckpoint?) throws {
        guard let connection else { throw AuditError.unavailable("audit store not open") }
        try run(connection, "BEGIN")
        do {
            for start in stride(from: 0, to: rows.count, by: Self.rowsPerStatement) {
                try run(connection, Self.insert(rows[start..<min(rows.count, start + Self.rowsPerStatement)]))
            }
            if let checkpoint {
                try run(connection, Self.insert(checkpoint))
            }
            try run(connection, "COMMIT")
        } catch {
            _ = try? run(connection, "ROLLBACK")
            throw url.map { PostgresStore.storeError(error, url: $0) } ?? error
        }
    }

    /// A checkpoint (a shutdown re-signs the last one: the newer signature wins).
    static func insert(_ checkpoint: AuditCheckpoint) -> PostgresQuery {
        """
        INSERT INTO audit_checkpoints (node_id, seq, time_us, hash, key_id, public_key, signature)
        VALUES (\(checkpoint.nodeID), \(checkpoint.seq), \(checkpoint.timeMicros), \(checkpoint.hash),
            \(checkpoint.keyID), \(checkpoint.publicKey), \(checkpoint.signature))
        ON CONFLICT (node_id, seq) DO UPDATE SET time_us = excluded.time_us, hash = excluded.hash,
            key_id = excluded.key_id, public_key = excluded.public_key, signature = excluded.signature
        """
    }

    /// One multi-row INSERT; values are bound, never spliced into the SQL.
    static func insert(_ rows: ArraySlice<AuditChainedRow>) throws -> PostgresQuery {
        let columns = AuditEntry.fieldNames + ["prev_hash", "hash"]
        var binds = PostgresBindings(capacity: rows.count * columns.count)
        var tuples: [String] = []
        tuples.reserveCapacity(rows.count)
        for row in rows {
            let first = binds.count
            for value in row.allValues {
                switch value.storage {
                case .null: binds.appendNull()
                case .int64(let integer): binds.append(integer)
                case .string(let text): binds.append(text)
                case .double(let double): binds.append(double)
                case .blob(let data): binds.append(ByteBuffer(bytes: data))
                }
            }
            tuples.append("(" + (first + 1...binds.count).map { "$\($0)" }.joined(separator: ",") + ")")
        }
        return PostgresQuery(
            unsafeSQL: "INSERT INTO audit_records (\(columns.joined(separator: ","))) VALUES \(tuples.joined(separator: ","))",
            binds: binds)
    }

    func close() {
        guard let connection else { return }
        self.connection = nil
        try? connection.close().wait()
    }
}
