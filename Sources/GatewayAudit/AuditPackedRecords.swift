import GatewayCore

/// Records on their way to the writer: each one's chained fields after `seq`, packed back to back into one byte
/// buffer by the event loop that recorded them.
///
/// Packing copies bytes instead of retaining the strings a record holds: most of them (an operation's template, a
/// partner id, a node id) are shared by every call, so retaining them on the loops and releasing them on the
/// writer's thread made their reference counts bounce between cores. The writer encodes, hashes and binds
/// straight from these bytes, without a string or a retain per field.
///
/// A field is one tag byte, then a text's length (4 bytes, little-endian) and UTF-8 bytes, or an integer's 8 bytes
/// (little-endian two's complement), or nothing for a null; fields follow `AuditEntry.fieldNames` after `seq`. A
/// record's bytes are what the `v2` canonical encoding hashes after its version byte and `seq` (docs/audit.md), so
/// the byte order is fixed, not the host's.
struct AuditPackedRecords: Sendable {
    /// Nil until the first record: the writer makes empty values to swap batches out, and those allocate nothing.
    private var storage: Storage?
    private var starts: [Int] = []

    static let null: UInt8 = 0
    static let text: UInt8 = 1
    static let integer: UInt8 = 2

    /// The number of records.
    var count: Int { starts.count }

    /// Keeps room for as many records, and bytes, as `other` holds: its bytes, not its capacity, so that after a burst
    /// the next batches' buffers come back down to what they hold.
    mutating func reserveCapacity(like other: AuditPackedRecords) {
        if let used = other.storage?.count { storage = Storage(capacity: used) }
        starts.reserveCapacity(other.starts.count)
    }

    /// Packs `record`'s fields in canonical order: the packing side of `AuditEntry.init(_:nodeID:)`, which a test
    /// keeps in step with it (both must give the same canonical bytes).
    mutating func append(_ record: CallRecord, nodeID: String) {
        var packer = Packer(storage: uniqueStorage())
        starts.append(packer.count)
        packer.text(nodeID)
        packer.integer(record.timeMicros)
        packer.text(record.phase.rawValue)
        packer.text(record.requestID)
        packer.text(record.facts.callerID)
        packer.text(record.facts.authentication?.rawValue)
        packer.text(record.callerCertificateFingerprint)
        packer.text(record.clientAddress)
        packer.text(record.facts.merchantID)
        packer.text(record.facts.partnerID)
        packer.text(record.facts.account)
        packer.text(record.facts.environment?.rawValue)
        packer.text(record.facts.operation?.id)
        packer.text(record.facts.operation?.family)
        packer.text(record.facts.operation?.template)
        packer.text(record.method)
        packer.text(record.path)
        packer.text(record.facts.release)
        packer.text(record.idempotencyKey)
        packer.text(record.correlationID)
        packer.text(record.requestBodySHA256)
        packer.integer(record.requestBodyBytes.map(Int64.init))
        packer.integer(record.status.map(Int64.init))
        packer.text(record.gatewayErrorCode)
        packer.text(record.klarnaErrorCode)
        packer.text(record.klarnaErrorID)
        packer.text(record.responseBodySHA256)
        packer.integer(record.responseBodyBytes.map(Int64.init))
        packer.integer(Int64(record.upstreamAttempts))
        packer.integer(record.upstreamLatencyMicros)
        packer.text(record.credential?.id)
        packer.integer(record.credential.map { Int64($0.version) })
        packer.text(record.upstreamCertificateFingerprint)
        packer.finish()
    }

    /// Packs an entry read back from a store, as `append(_:nodeID:)` packs a call: the bytes its `v2` canonical
    /// encoding hashes after the version byte and `seq`, by the same packer, so the writer and the verifier cannot
    /// disagree on them.
    mutating func append(_ entry: AuditEntry) {
        var packer = Packer(storage: uniqueStorage())
        starts.append(packer.count)
        entry.visitFieldsAfterSeq(&packer)
        packer.finish()
    }

    /// The storage, copied first if another value shares it (values are moved between threads, not shared, so
    /// this copies nothing in practice; it keeps value semantics should one ever be copied and appended to).
    private mutating func uniqueStorage() -> Storage {
        // Checked before binding the storage to a name, which would be a second reference.
        if !isKnownUniquelyReferenced(&storage) { storage = storage?.copy() ?? Storage(capacity: 1_024) }
        return storage!
    }

    /// The packed bytes in one allocation that doubles when full, written through a pointer: appending to an
    /// array field by field (a capacity and uniqueness check and a call per piece) was most of what packing cost.
    fileprivate final class Storage: @unchecked Sendable {  // @unchecked: written only while uniquely referenced
        private(set) var base: UnsafeMutableRawPointer
        private(set) var capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = max(capacity, 64)
            base = Self.allocate(self.capacity)
        }

        deinit { base.deallocate() }

        func copy() -> Storage {
            let copy = Storage(capacity: capacity)
            copy.base.copyMemory(from: base, byteCount: count)
            copy.count = count
            return copy
        }

        /// Bound to bytes, as the reader reads them; fields are stored unaligned into it.
        private static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
            let base = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
            base.bindMemory(to: UInt8.self, capacity: byteCount)
            return base
        }

        /// Makes room for `extra` more bytes after `used`.
        func reserve(_ extra: Int, after used: Int) {
            guard used + extra > capacity else { return }
            var grown = capacity * 2
            while grown < used + extra { grown *= 2 }
            let moved = Self.allocate(grown)
            moved.copyMemory(from: base, byteCount: used)
            base.deallocate()
            base = moved
            capacity = grown
        }
    }

    /// Writes one record's fields after the storage's bytes; `finish` makes them part of it.
    private struct Packer: AuditFieldVisitor {
        let storage: Storage
        var count: Int

        init(storage: Storage) {
            self.storage = storage
            count = storage.count
        }

        mutating func text(_ value: String?) {
            guard let value else { return null() }
            // Read in place (small strings too); only a bridged string takes the slower path.
            if value.utf8.withContiguousStorageIfAvailable({ bytes(UnsafeRawBufferPointer($0)) }) == nil {
                Array(value.utf8).withUnsafeBytes { bytes($0) }
            }
        }

        private mutating func bytes(_ utf8: UnsafeRawBufferPointer) {
            storage.reserve(5 + utf8.count, after: count)
            let at = storage.base + count
            at.storeBytes(of: AuditPackedRecords.text, as: UInt8.self)
            at.storeBytes(of: UInt32(truncatingIfNeeded: utf8.count).littleEndian, toByteOffset: 1, as: UInt32.self)
            if let source = utf8.baseAddress { (at + 5).copyMemory(from: source, byteCount: utf8.count) }
            count += 5 + utf8.count
        }

        mutating func integer(_ value: Int64?) {
            guard let value else { return null() }
            storage.reserve(9, after: count)
            let at = storage.base + count
            at.storeBytes(of: AuditPackedRecords.integer, as: UInt8.self)
            at.storeBytes(of: value.littleEndian, toByteOffset: 1, as: Int64.self)
            count += 9
        }

        private mutating func null() {
            storage.reserve(1, after: count)
            storage.base.storeBytes(of: AuditPackedRecords.null, toByteOffset: count, as: UInt8.self)
            count += 1
        }

        func finish() { storage.count = count }
    }

    /// A reader over the records as they are now; it keeps their bytes alive and unchanged (an append made
    /// while a reader exists copies them first).
    var reader: Reader { Reader(storage: storage, starts: starts) }

    /// Runs `body` with a reader over the records.
    func withReader<Result>(_ body: (Reader) throws -> Result) rethrows -> Result { try body(reader) }

    /// The records of several segments as one sequence of rows.
    struct Rows {
        private let readers: [Reader]
        private var segment = 0
        private var index = 0
        /// Rows not yet visited.
        private(set) var remaining: Int

        init(_ segments: [AuditPackedRecords]) {
            readers = segments.map(\.reader)
            remaining = readers.reduce(0) { $0 + $1.count }
        }

        /// Hands the next row's fields to `visitor`; only while `remaining` is above zero.
        mutating func visitNext<Visitor: AuditPackedFieldVisitor>(_ visitor: inout Visitor) {
            while index == readers[segment].count {
                segment += 1
                index = 0
            }
            readers[segment].visit(index, &visitor)
            index += 1
            remaining -= 1
        }
    }

    /// Reads packed records in place.
    struct Reader {
        /// Holds the bytes `bytes` points into.
        private let storage: Storage?
        private let starts: [Int]
        let bytes: UnsafeBufferPointer<UInt8>

        fileprivate init(storage: Storage?, starts: [Int]) {
            self.storage = storage
            self.starts = starts
            bytes = storage.map { UnsafeBufferPointer(start: $0.base.assumingMemoryBound(to: UInt8.self), count: $0.count) }
                ?? UnsafeBufferPointer(start: nil, count: 0)
        }

        /// The number of records.
        var count: Int { starts.count }

        /// Record `index`'s packed bytes: its fields after `seq`, as the `v2` canonical encoding hashes them.
        @inline(__always)
        func bytes(of index: Int) -> UnsafeRawBufferPointer {
            let start = starts[index]
            let end = index + 1 < starts.count ? starts[index + 1] : bytes.count
            return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[start..<end])
        }

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
                    let length = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                    offset += 4
                    visitor.text(UnsafeBufferPointer(start: bytes.baseAddress! + offset, count: length))
                    offset += length
                } else if tag == AuditPackedRecords.integer {
                    visitor.integer(Int64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: Int64.self)))
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
