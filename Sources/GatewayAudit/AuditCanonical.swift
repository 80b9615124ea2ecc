import Crypto
import GatewayCore

/// The `v1` canonical encodings the chain and the checkpoint signatures are computed over (see docs/audit.md).
///
/// JSON without whitespace, keys in a fixed order, every key present (`null` when absent), integers in decimal,
/// strings escaped by `JSONText.quote`; so anyone can recompute it from an export with a few lines of code.
public enum AuditCanonical {
    /// The encoding version, the first key of every canonical record.
    public static let version = 1

    /// The hash the first entry of a fresh trail chains from.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The canonical encoding of an entry's chained fields (not its `prev_hash`/`hash`).
    public static func encode(_ entry: AuditEntry) -> String {
        var bytes: [UInt8] = []
        encode(entry, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `SHA-256(prev hash bytes || canonical encoding)`, hex; a malformed previous hash is hashed as its text.
    public static func chainHash(previous: String, entry: AuditEntry) -> String {
        var bytes: [UInt8] = []
        encode(entry, into: &bytes)
        return Hex.encode(digest(previous: previousBytes(previous), canonical: bytes))
    }

    /// The bytes a previous hash contributes: its 32 raw bytes, or its text when it is not 64 hex digits.
    static func previousBytes(_ previous: String) -> [UInt8] {
        if let bytes = Hex.decode(previous), bytes.count == 32 { return bytes }
        return Array(previous.utf8)
    }

    static func digest(previous: [UInt8], canonical: [UInt8]) -> SHA256.Digest {
        var hasher = SHA256()
        previous.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        canonical.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize()
    }

    /// `,"name":` for every field after `seq`, in order and back to back (the keys are the same for every
    /// record), and where each one ends: one buffer, so a field's key costs no retain of an array of its own.
    static let keysAfterSeq: [UInt8] = Array(AuditEntry.fieldNames.dropFirst().map { ",\"\($0)\":" }.joined().utf8)
    static let keyEnds: [Int] = AuditEntry.fieldNames.dropFirst().reduce(into: []) { ends, name in
        ends.append((ends.last ?? 0) + ",\"\(name)\":".utf8.count)
    }
    static let null: [UInt8] = Array("null".utf8)
    private static let head: [UInt8] = Array("{\"v\":\(version),\"seq\":".utf8)

    /// Writes the canonical encoding into `out` (emptied first, capacity kept): the writer encodes every record
    /// into one reused buffer, byte for byte what `v1` always was, without building strings.
    static func encode(_ entry: AuditEntry, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: head)
        appendDecimal(entry.seq, to: &out)
        keysAfterSeq.withUnsafeBufferPointer { keys in
            keyEnds.withUnsafeBufferPointer { ends in
                // Swapped in and out rather than copied, so the buffer keeps one owner and appending never copies it.
                var writer = CanonicalWriter(keys: keys, ends: ends)
                swap(&out, &writer.out)
                entry.visitFieldsAfterSeq(&writer)
                writer.out.append(UInt8(ascii: "}"))
                swap(&out, &writer.out)
            }
        }
    }

    static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = out.count
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        out[start...].reverse()
    }

    private struct CanonicalWriter: AuditFieldVisitor {
        var out: [UInt8] = []
        let keys: UnsafeBufferPointer<UInt8>
        let ends: UnsafeBufferPointer<Int>
        var index = 0

        init(keys: UnsafeBufferPointer<UInt8>, ends: UnsafeBufferPointer<Int>) {
            self.keys = keys
            self.ends = ends
        }

        private mutating func key() {
            let start = index == 0 ? 0 : ends[index - 1]
            out.append(contentsOf: UnsafeBufferPointer(rebasing: keys[start..<ends[index]]))
            index += 1
        }

        mutating func text(_ value: String?) {
            key()
            guard let value else { return out.append(contentsOf: AuditCanonical.null) }
            // Most values need no escaping; a scan of the contiguous bytes is far cheaper than quoting scalar by
            // scalar (or iterating the UTF-8 view). Read in place: a mutable copy would retain the string.
            var plain = value.utf8.withContiguousStorageIfAvailable { appendIfPlain($0) }
            if plain == nil {
                // Not stored as contiguous UTF-8 (a bridged string): a contiguous copy takes the same path.
                var contiguous = value
                contiguous.makeContiguousUTF8()
                plain = contiguous.utf8.withContiguousStorageIfAvailable { appendIfPlain($0) }
            }
            if plain != true { out.append(contentsOf: JSONText.quote(value).utf8) }
        }

        /// Appends `bytes` quoted when they need no escaping; false (and nothing appended) otherwise.
        private mutating func appendIfPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: bytes)
            out.append(UInt8(ascii: "\""))
            return true
        }

        mutating func integer(_ value: Int64?) {
            key()
            guard let value else { return out.append(contentsOf: AuditCanonical.null) }
            AuditCanonical.appendDecimal(value, to: &out)
        }
    }
}

/// The head of one chain as the writer extends it: links entries in sequence order, reusing its buffers, so
/// chaining a record costs one encoding into a reused buffer, one SHA-256 and one 64-character string.
struct AuditChainLinker {
    private(set) var seq: Int64
    private(set) var hash: String
    private var previous: [UInt8]
    private var scratch: [UInt8] = []

    init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
        previous = AuditCanonical.previousBytes(hash)
        scratch.reserveCapacity(1024)
    }

    /// Gives `entry` the next sequence number, its predecessor's hash and its own.
    mutating func link(_ entry: inout AuditEntry) {
        seq += 1
        entry.seq = seq
        entry.prevHash = hash
        AuditCanonical.encode(entry, into: &scratch)
        let digest = AuditCanonical.digest(previous: previous, canonical: scratch)
        previous.removeAll(keepingCapacity: true)
        digest.withUnsafeBytes { previous.append(contentsOf: $0) }
        hash = Self.hex(previous)
        entry.hash = hash
    }

    private static let digits = Array("0123456789abcdef".utf8)

    private static func hex(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[2 * index] = digits[Int(byte >> 4)]
                buffer[2 * index + 1] = digits[Int(byte & 0x0F)]
            }
            return bytes.count * 2
        }
    }
}
