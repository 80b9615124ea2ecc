import Crypto

/// Where a batch sits in its chain once linked: its records' sequence numbers, hashes and predecessors' hashes,
/// as hex bytes the backends bind without making a string per record.
struct AuditChainLinks {
    /// The first record's sequence number; the others follow without gaps.
    let firstSeq: Int64
    /// The hash (hex) the first record chains from, then each record's hash, 64 hex digits each: one buffer per
    /// batch, in which a record's predecessor is the 64 bytes before its own.
    var hashes: [UInt8]

    /// Links that start after `previousHash` (64 hex digits), with no record yet.
    init(firstSeq: Int64, previousHash: [UInt8]) {
        self.firstSeq = firstSeq
        hashes = previousHash
    }

    /// Runs `body` with the hashes in place; the pointers it hands out stay valid until `body` returns.
    func withReader<Result>(_ body: (Reader) throws -> Result) rethrows -> Result {
        try hashes.withUnsafeBufferPointer { try body(Reader(hashes: $0)) }
    }

    /// Reads each record's previous hash and hash (64 hex bytes each) in place.
    struct Reader {
        let hashes: UnsafeBufferPointer<UInt8>

        /// The hash the record at `index` (counted across the batch) chains from.
        func previousHash(_ index: Int) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: hashes[(index * 64)..<(index * 64 + 64)])
        }

        /// The hash of the record at `index`.
        func hash(_ index: Int) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: hashes[((index + 1) * 64)..<((index + 1) * 64 + 64)])
        }
    }
}

/// The head of one chain as the writer extends it: links records in sequence order, reusing its buffers, so
/// chaining a record costs one SHA-256 over bytes it already holds (the `v2` encoding is the packed record).
struct AuditChainLinker {
    private(set) var seq: Int64
    /// The head's hash as 64 hex digits; each batch's links start with a copy of it.
    private var hexHash: [UInt8]
    private var previous: [UInt8]

    init(seq: Int64, hash: String) {
        self.seq = seq
        hexHash = Array(hash.utf8)
        previous = AuditCanonical.previousBytes(hash)
    }

    /// The head's hash (hex), as checkpoints sign it.
    var hash: String { String(decoding: hexHash, as: UTF8.self) }

    /// Links that start at the head, with no record: what a checkpoint alone is written with.
    var emptyLinks: AuditChainLinks { AuditChainLinks(firstSeq: seq + 1, previousHash: hexHash) }

    /// Gives the records of `segments` (in order) the next sequence numbers and their hashes.
    mutating func link(_ segments: [AuditPackedRecords]) -> AuditChainLinks {
        var total = 0
        for segment in segments { total += segment.count }
        // One buffer for the batch: the head's hash, then each record's.
        var links = AuditChainLinks(firstSeq: seq + 1, previousHash: [])
        links.hashes = [UInt8](unsafeUninitializedCapacity: (total + 1) * 64) { buffer, initialized in
            _ = buffer.initialize(from: hexHash)
            initialized = 64
        }
        guard total > 0 else { return links }
        links.hashes.append(contentsOf: repeatElement(0, count: total * 64))
        links.hashes.withUnsafeMutableBufferPointer { hashes in
            Self.digits.withUnsafeBufferPointer { digits in
                var position = 64
                for segment in segments {
                    segment.withReader { reader in
                        for index in 0..<reader.count {
                            seq += 1
                            var hasher = SHA256()
                            previous.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                            // The `v2` encoding: its version byte and `seq` (little-endian), then the packed fields.
                            var head: (UInt64, UInt64) = (0, 0)
                            withUnsafeMutableBytes(of: &head) { head in
                                head.storeBytes(of: Self.versionByte, as: UInt8.self)
                                head.storeBytes(of: seq.littleEndian, toByteOffset: 1, as: Int64.self)
                                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: head[0..<9]))
                            }
                            hasher.update(bufferPointer: reader.bytes(of: index))
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
        hexHash.withUnsafeMutableBufferPointer { head in
            for index in 0..<64 { head[index] = links.hashes[links.hashes.count - 64 + index] }
        }
        return links
    }

    private static let digits = Array("0123456789abcdef".utf8)
    /// The canonical version of every record it links: the backends store it with the record.
    static let version = AuditCanonical.packedVersion
    private static let versionByte = UInt8(version)
}
