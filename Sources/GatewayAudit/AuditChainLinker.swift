import Crypto

/// Where a batch sits in its chain once linked: its records' sequence numbers, hashes and predecessors' hashes,
/// as hex bytes the backends bind without making a string per record.
struct AuditChainLinks {
    /// The first record's sequence number; the others follow without gaps.
    let firstSeq: Int64
    /// The hash (hex) the first record chains from.
    let previousHash: [UInt8]
    /// Each record's hash, 64 hex digits each, in sequence order.
    var hashes: [UInt8] = []

    /// Runs `body` with the hashes in place; the pointers it hands out stay valid until `body` returns.
    func withReader<Result>(_ body: (Reader) throws -> Result) rethrows -> Result {
        try hashes.withUnsafeBufferPointer { hashes in
            try previousHash.withUnsafeBufferPointer { previous in try body(Reader(hashes: hashes, previous: previous)) }
        }
    }

    /// Reads each record's previous hash and hash (64 hex bytes each) in place.
    struct Reader {
        let hashes: UnsafeBufferPointer<UInt8>
        let previous: UnsafeBufferPointer<UInt8>

        /// The hash the record at `index` (counted across the batch) chains from.
        func previousHash(_ index: Int) -> UnsafeBufferPointer<UInt8> {
            index == 0 ? previous : UnsafeBufferPointer(rebasing: hashes[((index - 1) * 64)..<(index * 64)])
        }

        /// The hash of the record at `index`.
        func hash(_ index: Int) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: hashes[(index * 64)..<(index * 64 + 64)])
        }
    }
}

/// The head of one chain as the writer extends it: links records in sequence order, reusing its buffers, so
/// chaining a record costs one encoding into a reused buffer and one SHA-256.
struct AuditChainLinker {
    private(set) var seq: Int64
    private(set) var hash: String
    private var previous: [UInt8]
    private let scratch = AuditCanonicalBuffer()

    init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
        previous = AuditCanonical.previousBytes(hash)
    }

    /// Gives the records of `segments` (in order) the next sequence numbers and their hashes.
    mutating func link(_ segments: [AuditPackedRecords]) -> AuditChainLinks {
        var links = AuditChainLinks(firstSeq: seq + 1, previousHash: Array(hash.utf8))
        var total = 0
        for segment in segments { total += segment.count }
        guard total > 0 else { return links }
        links.hashes = [UInt8](repeating: 0, count: total * 64)
        links.hashes.withUnsafeMutableBufferPointer { hashes in
            Self.digits.withUnsafeBufferPointer { digits in
                var position = 0
                for segment in segments {
                    segment.withReader { reader in
                        for index in 0..<reader.count {
                            seq += 1
                            var writer = scratch.start(seq: seq)
                            reader.visit(index, &writer)
                            writer.finish()
                            var hasher = SHA256()
                            previous.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                            hasher.update(bufferPointer: UnsafeRawBufferPointer(scratch.bytes))
                            let digest = hasher.finalize()
                            previous.removeAll(keepingCapacity: true)
                            digest.withUnsafeBytes { previous.append(contentsOf: $0) }
                            for byte in previous {
                                hashes[position] = digits[Int(byte >> 4)]
                                hashes[position + 1] = digits[Int(byte & 0x0F)]
                                position += 2
                            }
                        }
                    }
                }
            }
        }
        hash = String(decoding: links.hashes.suffix(64), as: UTF8.self)
        return links
    }

    private static let digits = Array("0123456789abcdef".utf8)
}
