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
    /// How long one statement may go unanswered before the connection is given up.
    private let statementTimeout: TimeAmount
    private var connection: PostgresConnection?
    /// Set by the first `open`; names the server (password hidden) in errors.
    private var url: PostgresURL?

    init(url: String, nodeID: String, durability: AuditDurability, statementTimeout: TimeAmount, logger: Logger) {
        self.urlText = url
        self.nodeID = nodeID
        self.durability = durability
        self.statementTimeout = statementTimeout
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
        try connection.blockingQuery(query, logger: logger, timeout: statementTimeout)
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

    /// One statement per batch, so one round trip: a single statement is its own transaction, so the records
    /// and the checkpoint commit together (or not at all) without BEGIN and COMMIT round trips of their own.
    /// A batch without a checkpoint (nearly every one) goes as the prepared `RecordsInsert`: the server parses and
    /// plans it once per connection, where parsing, analysing and planning the statement again took about a third
    /// of the server's CPU per batch (docs/performance.md).
    func append(_ segments: [AuditPackedRecords], links: AuditChainLinks, checkpoint: AuditCheckpoint?) throws {
        guard let connection else { throw AuditError.unavailable("audit store not open") }
        do {
            if checkpoint == nil {
                let builder = Self.columns(segments, links: links)
                guard builder.rows > 0 else { return }
                try connection.blockingExecute(RecordsInsert(bindings: builder.bindings(extra: 0)), logger: logger, timeout: statementTimeout)
            } else if let query = Self.insert(segments, links: links, checkpoint: checkpoint) {
                try run(connection, query)
            }
        } catch {
            throw url.map { PostgresStore.storeError(error, url: $0) } ?? error
        }
    }

    /// A checkpoint (a shutdown re-signs the last one: the newer signature wins).
    static func insert(_ checkpoint: AuditCheckpoint) -> PostgresQuery {
        """
        INSERT INTO audit_checkpoints (node_id, seq, time_us, hash, key_id, public_key, signature)
        VALUES (\(checkpoint.nodeID), \(checkpoint.seq), \(checkpoint.timeMicros), \(checkpoint.hash),
            \(checkpoint.keyID), \(checkpoint.publicKey), \(checkpoint.signature))
        \(unescaped: checkpointConflict)
        """
    }

    private static let checkpointConflict = """
        ON CONFLICT (node_id, seq) DO UPDATE SET time_us = excluded.time_us, hash = excluded.hash,
            key_id = excluded.key_id, public_key = excluded.public_key, signature = excluded.signature
        """

    /// Every column in `insertSQL` order with its type; `integer` columns are BIGINT, the rest TEXT.
    private static let columns: [(name: String, integer: Bool)] = (AuditEntry.fieldNames + AuditEntry.chainColumns).map {
        ($0, AuditEntry.integerColumns.contains($0))
    }

    /// `INSERT … SELECT * FROM unnest($1::bigint[], $2::text[], …)`: one array per column, so the statement has
    /// 37 parameters whatever the batch size, and its text never changes.
    private static let recordsSQL: String = {
        let arrays = columns.enumerated().map { "$\($0.offset + 1)::\($0.element.integer ? "bigint" : "text")[]" }
        return "INSERT INTO audit_records (\(columns.map(\.name).joined(separator: ","))) SELECT * FROM unnest(\(arrays.joined(separator: ",")))"
    }()

    /// The records (values bound, never spliced into the SQL) and, in the same statement, the checkpoint;
    /// nil when there is nothing to write.
    static func insert(_ segments: [[AuditEntry]], checkpoint: AuditCheckpoint?) -> PostgresQuery? {
        var builder = ColumnBuilder(columns: columns, rows: segments.reduce(0) { $0 + $1.count })
        for segment in segments {
            for entry in segment {
                builder.integer(entry.seq)
                entry.visitFieldsAfterSeq(&builder)
                builder.text(entry.prevHash)
                builder.text(entry.hash)
                builder.integer(entry.canonicalVersion)
                builder.endRow()
            }
        }
        return insert(builder, checkpoint: checkpoint)
    }

    /// The same for the writer's packed records, with their places in the chain.
    static func insert(_ segments: [AuditPackedRecords], links: AuditChainLinks, checkpoint: AuditCheckpoint?) -> PostgresQuery? {
        insert(columns(segments, links: links), checkpoint: checkpoint)
    }

    /// The packed records' values, one array per column, with their places in the chain.
    private static func columns(_ segments: [AuditPackedRecords], links: AuditChainLinks) -> ColumnBuilder {
        var builder = ColumnBuilder(columns: columns, rows: segments.reduce(0) { $0 + $1.count })
        links.withReader { hashes in
            for segment in segments {
                segment.withReader { records in
                    for index in 0..<records.count {
                        let row = builder.rows
                        builder.integer(links.firstSeq + Int64(row))
                        records.visit(index, &builder)
                        builder.text(hashes.previousHash(row))
                        builder.text(hashes.hash(row))
                        builder.integer(AuditChainLinker.version)
                        builder.endRow()
                    }
                }
            }
        }
        return builder
    }

    /// `recordsSQL` as a prepared statement; its name says which text it is, since a connection keeps the first
    /// statement prepared under a name.
    struct RecordsInsert: PostgresPreparedStatement {
        static let name = "kgw_audit_records_insert_\(columns.count)"
        static let sql = recordsSQL
        typealias Row = ()
        let bindings: PostgresBindings

        func makeBindings() -> PostgresBindings { bindings }
        func decodeRow(_ row: PostgresRow) throws -> Row {}
    }

    private static func insert(_ builder: ColumnBuilder, checkpoint: AuditCheckpoint?) -> PostgresQuery? {
        guard builder.rows > 0 else { return checkpoint.map(insert) }
        var binds = builder.bindings(extra: 7)
        guard let checkpoint else { return PostgresQuery(unsafeSQL: recordsSQL, binds: binds) }
        let first = columns.count + 1
        binds.append(checkpoint.nodeID)
        binds.append(checkpoint.seq)
        binds.append(checkpoint.timeMicros)
        binds.append(checkpoint.hash)
        binds.append(checkpoint.keyID)
        binds.append(checkpoint.publicKey)
        binds.append(checkpoint.signature)
        let marks = (first..<(first + 7)).map { "$\($0)" }.joined(separator: ",")
        // A data-modifying WITH runs to completion whether or not the main statement reads it.
        let sql = """
            WITH signed_checkpoint AS (
                INSERT INTO audit_checkpoints (node_id, seq, time_us, hash, key_id, public_key, signature) VALUES (\(marks))
                \(checkpointConflict)
            )
            \(recordsSQL)
            """
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    func close() {
        guard let connection else { return }
        self.connection = nil
        try? connection.close().wait()
    }

    /// A writer dropped without `shutdown` (a caller's task cancelled) still closes its connection, which also
    /// releases the node's advisory lock; the connection is kept until its channel has closed.
    deinit {
        guard let connection else { return }
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }
}

/// Fills one PostgreSQL array per column from entries or packed records visited in column order.
private struct ColumnBuilder: AuditFieldVisitor, AuditPackedFieldVisitor {
    var arrays: [AuditPostgresArray]
    private(set) var rows = 0
    private var index = 0

    /// Arrays with room for `rows` rows, so that filling them does not grow them step by step (most of what
    /// the writer spent on PostgreSQL's side of a batch, docs/performance.md).
    init(columns: [(name: String, integer: Bool)], rows: Int) {
        arrays = columns.map { AuditPostgresArray(integer: $0.integer, rows: rows) }
    }

    /// The arrays as a statement's first parameters, with room for `extra` more.
    func bindings(extra: Int) -> PostgresBindings {
        var binds = PostgresBindings(capacity: arrays.count + extra)
        for column in arrays { binds.append(column) }
        return binds
    }

    mutating func text(_ value: String?) {
        arrays[index].append(value)
        index += 1
    }

    mutating func integer(_ value: Int64?) {
        arrays[index].append(value)
        index += 1
    }

    mutating func text(_ bytes: UnsafeBufferPointer<UInt8>) {
        arrays[index].append(bytes)
        index += 1
    }

    mutating func integer(_ value: Int64) {
        arrays[index].append(value)
        index += 1
    }

    mutating func null() {
        arrays[index].append(Optional<Int64>.none)
        index += 1
    }

    mutating func endRow() {
        rows += 1
        index = 0
    }
}

/// A one-dimensional `bigint[]` or `text[]` that may hold NULLs, in PostgreSQL's binary array format
/// (postgres-nio's own arrays cannot hold NULLs).
struct AuditPostgresArray: PostgresDynamicTypeEncodable {
    private let element: PostgresDataType
    private var count: Int32 = 0
    private var hasNull = false
    private var elements = ByteBuffer()

    /// An empty array with room for `rows` elements of a typical size (an integer's 8 bytes; a text up to 64 bytes,
    /// a hash's length, which most of the text columns' values are within), up to 1,024 of them: a backlog's batch
    /// of 100,000 rows would otherwise reserve a quarter of a gigabyte up front; past that it grows as it fills.
    init(integer: Bool, rows: Int) {
        element = integer ? .int8 : .text
        elements = ByteBufferAllocator().buffer(capacity: min(rows, 1_024) * (4 + (integer ? 8 : 64)))
    }

    var psqlType: PostgresDataType { element == .int8 ? .int8Array : .textArray }
    var psqlFormat: PostgresFormat { .binary }

    mutating func append(_ value: String?) {
        count += 1
        guard let value else { return appendNull() }
        elements.writeInteger(Int32(value.utf8.count))
        elements.writeString(value)
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        count += 1
        elements.writeInteger(Int32(bytes.count))
        elements.writeBytes(UnsafeRawBufferPointer(bytes))
    }

    mutating func append(_ value: Int64?) {
        count += 1
        guard let value else { return appendNull() }
        elements.writeInteger(Int32(8))
        elements.writeInteger(value)
    }

    private mutating func appendNull() {
        hasNull = true
        elements.writeInteger(Int32(-1))
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(Int32(1))  // dimensions
        buffer.writeInteger(Int32(hasNull ? 1 : 0))
        buffer.writeInteger(element.rawValue)
        buffer.writeInteger(count)  // length of the dimension
        buffer.writeInteger(Int32(1))  // its lower bound
        var elements = elements
        buffer.writeBuffer(&elements)
    }
}
