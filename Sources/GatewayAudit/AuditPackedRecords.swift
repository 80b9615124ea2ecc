import GatewayCore

/// Records on their way to the writer: each one's chained fields after `seq`, packed back to back into one byte
/// buffer by the event loop that recorded them.
///
/// Packing copies bytes instead of retaining the strings a record holds: most of them (an operation's template, a
/// partner id, a node id) are shared by every call, so retaining them on the loops and releasing them on the
/// writer's thread made their reference counts bounce between cores. The writer encodes, hashes and binds
/// straight from these bytes, without a string or a retain per field.
///
/// A field is one tag byte, then a text's length (4 bytes) and UTF-8 bytes, or an integer's 8 bytes, or nothing
/// for a null; fields follow `AuditEntry.fieldNames` after `seq`.
struct AuditPackedRecords: Sendable {
    private var bytes: [UInt8] = []
    private var starts: [Int] = []

    static let null: UInt8 = 0
    static let text: UInt8 = 1
    static let integer: UInt8 = 2

    /// The number of records.
    var count: Int { starts.count }

    /// Keeps room for as many records as `other` holds.
    mutating func reserveCapacity(like other: AuditPackedRecords) {
        bytes.reserveCapacity(other.bytes.count)
        starts.reserveCapacity(other.starts.count)
    }

    /// Packs `record`'s fields in canonical order: the packing side of `AuditEntry.init(_:nodeID:)`, which a test
    /// keeps in step with it (both must give the same canonical bytes).
    mutating func append(_ record: CallRecord, nodeID: String) {
        starts.append(bytes.count)
        text(nodeID)
        integer(record.timeMicros)
        text(record.phase.rawValue)
        text(record.requestID)
        text(record.facts.callerID)
        text(record.facts.authentication?.rawValue)
        text(record.callerCertificateFingerprint)
        text(record.clientAddress)
        text(record.facts.merchantID)
        text(record.facts.partnerID)
        text(record.facts.account)
        text(record.facts.environment?.rawValue)
        text(record.facts.operation?.id)
        text(record.facts.operation?.family)
        text(record.facts.operation?.template)
        text(record.method)
        text(record.path)
        text(record.facts.release)
        text(record.idempotencyKey)
        text(record.correlationID)
        text(record.requestBodySHA256)
        integer(record.requestBodyBytes.map(Int64.init))
        integer(record.status.map(Int64.init))
        text(record.gatewayErrorCode)
        text(record.klarnaErrorCode)
        text(record.klarnaErrorID)
        text(record.responseBodySHA256)
        integer(record.responseBodyBytes.map(Int64.init))
        integer(Int64(record.upstreamAttempts))
        integer(record.upstreamLatencyMicros)
        text(record.credential?.id)
        integer(record.credential.map { Int64($0.version) })
        text(record.upstreamCertificateFingerprint)
    }

    private mutating func text(_ value: String?) {
        guard let value else { return bytes.append(Self.null) }
        bytes.append(Self.text)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: value.utf8.count)) { bytes.append(contentsOf: $0) }
        // Read in place (small strings too); only a bridged string takes the slower path.
        if value.utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
            bytes.append(contentsOf: value.utf8)
        }
    }

    private mutating func integer(_ value: Int64?) {
        guard let value else { return bytes.append(Self.null) }
        bytes.append(Self.integer)
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    /// Runs `body` with a reader over the records; the pointers it hands out stay valid until `body` returns.
    func withReader<Result>(_ body: (Reader) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBufferPointer { bytes in
            try starts.withUnsafeBufferPointer { starts in try body(Reader(bytes: bytes, starts: starts)) }
        }
    }

    /// Reads packed records in place.
    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        let starts: UnsafeBufferPointer<Int>

        /// The number of records.
        var count: Int { starts.count }

        /// Hands record `index`'s fields after `seq` to `visitor`, in `AuditEntry.fieldNames` order; texts are
        /// handed as their UTF-8 bytes in the packed buffer.
        @inline(__always)
        func visit<Visitor: AuditPackedFieldVisitor>(_ index: Int, _ visitor: inout Visitor) {
            let base = UnsafeRawPointer(bytes.baseAddress!)
            var offset = starts[index]
            let end = index + 1 < starts.count ? starts[index + 1] : bytes.count
            while offset < end {
                let tag = bytes[offset]
                offset += 1
                if tag == AuditPackedRecords.text {
                    let length = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                    offset += 4
                    visitor.text(UnsafeBufferPointer(start: bytes.baseAddress! + offset, count: length))
                    offset += length
                } else if tag == AuditPackedRecords.integer {
                    visitor.integer(base.loadUnaligned(fromByteOffset: offset, as: Int64.self))
                    offset += 8
                } else {
                    visitor.null()
                }
            }
        }
    }
}

/// Receives a packed record's chained fields in canonical order (`AuditPackedRecords.Reader.visit`).
protocol AuditPackedFieldVisitor {
    mutating func text(_ bytes: UnsafeBufferPointer<UInt8>)
    mutating func integer(_ value: Int64)
    mutating func null()
}
