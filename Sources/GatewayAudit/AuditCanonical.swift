import Crypto
import GatewayCore

/// The canonical encodings the chain and the checkpoint signatures are computed over (see docs/audit.md).
///
/// A record's hash covers one of two encodings, named by its `canonical_version`:
/// - `v1`, JSON without whitespace, keys in a fixed order, every key present (`null` when absent), integers in
///   decimal, strings escaped by `JSONText.quote`: what every record used until the packed form;
/// - `v2`, the record's packed bytes (a version byte, `seq`, then per field a tag, a length and UTF-8, or an
///   integer, or nothing for null): what the writer already holds, so chaining a record builds no text.
///
/// Either can be recomputed from an export line with a few lines of code; the verifier accepts both.
public enum AuditCanonical {
    /// The JSON text encoding (`v1`).
    public static let textVersion: Int64 = 1
    /// The packed binary encoding (`v2`), which the writer chains every new record with (`AuditChainLinker`).
    public static let packedVersion: Int64 = 2

    /// The hash the first entry of a fresh trail chains from.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// Whether `version` names an encoding this build can recompute.
    public static func knows(_ version: Int64) -> Bool { version == textVersion || version == packedVersion }

    /// An entry as one JSON object with `"v"` first, its chained fields after (not its `prev_hash`/`hash`): the
    /// `v1` canonical encoding of a `v1` entry, and the readable form of a `v2` one (exports, the admin API).
    public static func encode(_ entry: AuditEntry) -> String {
        var bytes: [UInt8] = []
        encodeText(entry, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `SHA-256(prev hash bytes || canonical encoding)` in the entry's `canonical_version`, hex; a malformed
    /// previous hash is hashed as its text, and an unknown version gives an empty string (no record's hash).
    public static func chainHash(previous: String, entry: AuditEntry) -> String {
        let bytes: [UInt8]
        switch entry.canonicalVersion {
        case textVersion:
            var text: [UInt8] = []
            encodeText(entry, into: &text)
            bytes = text
        case packedVersion:
            bytes = packed(entry)
        default:
            return ""
        }
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

    /// The `v2` encoding of an entry: the bytes the writer hashes, rebuilt from the stored values.
    static func packed(_ entry: AuditEntry) -> [UInt8] {
        var fields = AuditPackedRecords()
        fields.append(entry)
        var bytes = [UInt8(truncatingIfNeeded: packedVersion)]
        withUnsafeBytes(of: entry.seq.littleEndian) { bytes.append(contentsOf: $0) }
        fields.withReader { bytes.append(contentsOf: $0.bytes(of: 0)) }
        return bytes
    }

    /// `,"name":` for every field after `seq`, in order and back to back (the keys are the same for every
    /// record), and where each one ends.
    static let keysAfterSeq: [UInt8] = Array(AuditEntry.fieldNames.dropFirst().map { ",\"\($0)\":" }.joined().utf8)
    static let keyEnds: [Int] = AuditEntry.fieldNames.dropFirst().reduce(into: []) { ends, name in
        ends.append((ends.last ?? 0) + ",\"\(name)\":".utf8.count)
    }

    /// Writes the entry as JSON text into `out` (emptied first, capacity kept); for a `v1` entry byte for byte
    /// what `v1` always was.
    static func encodeText(_ entry: AuditEntry, into out: inout [UInt8]) {
        let buffer = AuditCanonicalBuffer()
        var writer = buffer.start(seq: entry.seq, version: entry.canonicalVersion)
        entry.visitFieldsAfterSeq(&writer)
        writer.finish()
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: buffer.bytes)
    }
}

/// One reused buffer the canonical encoding is written into through a pointer, with its own copy of the keys:
/// appending to an array checks its uniqueness and capacity per append, which cost more than the bytes did.
final class AuditCanonicalBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int
    fileprivate let keys: UnsafeMutableBufferPointer<UInt8>
    fileprivate let keyEnds: UnsafeMutableBufferPointer<Int>

    init(capacity: Int = 1_024) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
        keys = .allocate(capacity: AuditCanonical.keysAfterSeq.count)
        _ = keys.initialize(from: AuditCanonical.keysAfterSeq)
        keyEnds = .allocate(capacity: AuditCanonical.keyEnds.count)
        _ = keyEnds.initialize(from: AuditCanonical.keyEnds)
    }

    deinit {
        base.deallocate()
        keys.deallocate()
        keyEnds.deallocate()
    }

    /// The bytes written since the last `start`.
    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    /// Empties the buffer and writes the head up to `seq`'s value; the writer appends the rest.
    func start(seq: Int64, version: Int64) -> AuditCanonicalWriter {
        count = 0
        Self.versionKey.withUnsafeBufferPointer { append($0) }
        appendDecimal(version)
        Self.seqKey.withUnsafeBufferPointer { append($0) }
        appendDecimal(seq)
        return AuditCanonicalWriter(buffer: self)
    }

    private static let versionKey = Array("{\"v\":".utf8)
    private static let seqKey = Array(",\"seq\":".utf8)

    @inline(__always)
    func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        let grown = max(capacity * 2, count + extra)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        moved.update(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = grown
    }

    @inline(__always)
    func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count)
        if let source = bytes.baseAddress { (base + count).update(from: source, count: bytes.count) }
        count += bytes.count
    }

    @inline(__always)
    func append(_ word: UInt32) {
        reserve(4)
        UnsafeMutableRawPointer(base + count).storeBytes(of: word, as: UInt32.self)
        count += 4
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    func appendDecimal(_ value: Int64) {
        reserve(20)
        if value < 0 { append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = count
        repeat {
            base[count] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
            count += 1
            magnitude /= 10
        } while magnitude > 0
        var low = start
        var high = count - 1
        while low < high {
            (base[low], base[high]) = (base[high], base[low])
            low += 1
            high -= 1
        }
    }
}

/// Writes one entry's fields after `seq` into an `AuditCanonicalBuffer` as JSON text.
struct AuditCanonicalWriter: AuditFieldVisitor {
    let buffer: AuditCanonicalBuffer
    private var index = 0

    fileprivate init(buffer: AuditCanonicalBuffer) {
        self.buffer = buffer
    }

    @inline(__always)
    private mutating func key() {
        let start = index == 0 ? 0 : buffer.keyEnds[index - 1]
        buffer.append(UnsafeBufferPointer(rebasing: buffer.keys[start..<buffer.keyEnds[index]]))
        index += 1
    }

    mutating func text(_ bytes: UnsafeBufferPointer<UInt8>) {
        key()
        // Most values need no escaping: a scan of the bytes, then one copy.
        if JSONText.needsEscaping(bytes) {
            var quoted: [UInt8] = []
            JSONText.appendQuoted(String(decoding: bytes, as: UTF8.self), to: &quoted)
            return quoted.withUnsafeBufferPointer { buffer.append($0) }
        }
        buffer.reserve(bytes.count + 2)
        buffer.append(UInt8(ascii: "\""))
        buffer.append(bytes)
        buffer.append(UInt8(ascii: "\""))
    }

    mutating func integer(_ value: Int64) {
        key()
        buffer.appendDecimal(value)
    }

    mutating func null() {
        key()
        buffer.append(Self.null)
    }

    private static let null = UInt32(littleEndian: 0x6C6C_756E)  // "null"

    mutating func text(_ value: String?) {
        guard let value else { return null() }
        // Read in place (a mutable copy for `withUTF8` would retain the string); a bridged string is copied.
        if value.utf8.withContiguousStorageIfAvailable({ text($0) }) == nil {
            let bytes = Array(value.utf8)
            bytes.withUnsafeBufferPointer { text($0) }
        }
    }

    mutating func integer(_ value: Int64?) {
        guard let value else { return null() }
        integer(value)
    }

    /// Closes the object.
    func finish() {
        buffer.append(UInt8(ascii: "}"))
    }
}
