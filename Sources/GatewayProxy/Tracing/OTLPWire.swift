/// The protobuf wire format as the OTLP trace messages need it, written straight into one byte array: varints,
/// fixed 64-bit values and length-delimited fields. Hand-written rather than generated: the few messages the
/// gateway sends (opentelemetry/proto/trace/v1, common/v1, collector/trace/v1) are then encoded with no message
/// object per span and no allocation beyond the array's growth.
public enum OTLPWire {
    /// Wire type 0.
    static let varintType: UInt64 = 0
    /// Wire type 1.
    static let fixed64Type: UInt64 = 1
    /// Wire type 2.
    static let lengthDelimited: UInt64 = 2

    /// How many bytes `value` takes as a varint.
    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        // Each byte carries 7 bits; 0 still takes one byte.
        (63 - (value | 1).leadingZeroBitCount) / 7 + 1
    }

    /// How many bytes a string field of `length` bytes takes with its key and length.
    @inline(__always)
    static func fieldSize(length: Int) -> Int { 1 + varintSize(UInt64(length)) + length }
}

/// Writes a field's bytes through a pointer into room already made for them: a whole field costs one capacity check
/// and one copy into the array, where appending byte by byte checked the array's capacity and uniqueness per byte
/// (most of tracing's cost on the event loop, docs/performance.md).
struct ProtoCursor {
    private(set) var pointer: UnsafeMutablePointer<UInt8>

    init(_ pointer: UnsafeMutablePointer<UInt8>) { self.pointer = pointer }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        pointer.pointee = value
        pointer += 1
    }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            byte(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        byte(UInt8(value))
    }

    /// A field's key; every field number the gateway writes is below 16, so it is always one byte.
    @inline(__always)
    mutating func key(_ field: UInt64, _ wireType: UInt64) { byte(UInt8(truncatingIfNeeded: field << 3 | wireType)) }

    @inline(__always)
    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        key(field, OTLPWire.varintType)
        varint(value)
    }

    /// A fixed64 field, little-endian (timestamps in nanoseconds).
    @inline(__always)
    mutating func fixed64(_ field: UInt64, _ value: UInt64) {
        key(field, OTLPWire.fixed64Type)
        UnsafeMutableRawPointer(pointer).storeBytes(of: value.littleEndian, as: UInt64.self)
        pointer += 8
    }

    /// `value`'s 8 bytes, big-endian (ids).
    @inline(__always)
    mutating func bigEndian(_ value: UInt64) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value.bigEndian, as: UInt64.self)
        pointer += 8
    }

    /// Raw bytes of `text` (UTF-8), without key or length.
    @inline(__always)
    mutating func utf8(_ text: String) {
        // Read in place: copying the string to call the mutating `withUTF8` cost a retain and a release each.
        let copied = text.utf8.withContiguousStorageIfAvailable { source -> Bool in
            if let base = source.baseAddress { pointer.update(from: base, count: source.count) }
            pointer += source.count
            return true
        }
        if copied == nil { for unit in text.utf8 { byte(unit) } }
    }

    /// A string field: key, length, bytes (`OTLPWire.fieldSize(length:)` of them).
    @inline(__always)
    mutating func string(_ field: UInt64, _ text: String, length: Int) {
        key(field, OTLPWire.lengthDelimited)
        varint(UInt64(length))
        utf8(text)
    }

    /// Bytes of `text`, without key or length.
    @inline(__always)
    mutating func bytes(_ text: UnsafeRawBufferPointer) {
        if let base = text.baseAddress { UnsafeMutableRawPointer(pointer).copyMemory(from: base, byteCount: text.count) }
        pointer += text.count
    }

    /// A `KeyValue` (common/v1) up to its `AnyValue`'s content, which is `anyValueLength` bytes: the three kinds
    /// of attribute differ only in that content. Keys are literals: no reference count to take, their length known.
    @inline(__always)
    mutating func keyValueHead(_ key: StaticString, anyValueLength: Int, field: UInt64) {
        let keyLength = OTLPWire.length(of: key)
        self.key(field, OTLPWire.lengthDelimited)
        varint(UInt64(OTLPWire.fieldSize(length: keyLength) + OTLPWire.fieldSize(length: anyValueLength)))
        self.key(1, OTLPWire.lengthDelimited)
        varint(UInt64(keyLength))
        key.withUTF8Buffer { bytes(UnsafeRawBufferPointer($0)) }
        self.key(2, OTLPWire.lengthDelimited)
        varint(UInt64(anyValueLength))
    }
}

extension OTLPWire {
    /// UTF-8 bytes of a literal key (a one-character literal may be stored as a scalar, not a pointer).
    @inline(__always)
    static func length(of key: StaticString) -> Int { key.withUTF8Buffer { $0.count } }

    /// Bytes of a `KeyValue` field whose key is `keyLength` bytes and whose `AnyValue` content is `anyValueLength`.
    @inline(__always)
    static func keyValueSize(keyLength: Int, anyValueLength: Int) -> Int {
        fieldSize(length: fieldSize(length: keyLength) + fieldSize(length: anyValueLength))
    }
}

extension Array where Element == UInt8 {
    /// Appends `size` bytes that `write` writes through a cursor (it must write exactly `size`). Small fields are
    /// written on the stack and copied in once.
    @inline(__always)
    mutating func protoWrite(size: Int, _ write: (inout ProtoCursor) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: size) { room in
            var cursor = ProtoCursor(room.baseAddress!)
            write(&cursor)
            assert(cursor.pointer == room.baseAddress! + size, "a protobuf field wrote other than its size")
            append(contentsOf: UnsafeBufferPointer(room))
        }
    }

    @inline(__always)
    mutating func protoVarint(_ value: UInt64) {
        protoWrite(size: OTLPWire.varintSize(value)) { $0.varint(value) }
    }

    /// A field's key; every field number the gateway writes is below 16, so it is always one byte.
    @inline(__always)
    mutating func protoKey(_ field: UInt64, _ wireType: UInt64) { append(UInt8(truncatingIfNeeded: field << 3 | wireType)) }

    @inline(__always)
    mutating func protoVarintField(_ field: UInt64, _ value: UInt64) {
        protoWrite(size: 1 + OTLPWire.varintSize(value)) { $0.varintField(field, value) }
    }

    /// A fixed64 field, little-endian (timestamps in nanoseconds).
    @inline(__always)
    mutating func protoFixed64(_ field: UInt64, _ value: UInt64) {
        protoWrite(size: 9) { $0.fixed64(field, value) }
    }

    /// Raw bytes of `text` (UTF-8), without key or length.
    @inline(__always)
    mutating func protoUTF8(_ text: String) {
        // Read in place: copying the string to call the mutating `withUTF8` cost a retain and a release each.
        if text.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil { append(contentsOf: text.utf8) }
    }

    @inline(__always)
    mutating func protoString(_ field: UInt64, _ text: String) {
        let length = text.utf8.count
        protoWrite(size: OTLPWire.fieldSize(length: length)) { $0.string(field, text, length: length) }
    }

    /// A span id (`high` alone) or a trace id (`high` then `low`) as its bytes, big-endian.
    @inline(__always)
    mutating func protoID(_ field: UInt64, _ high: UInt64, _ low: UInt64? = nil) {
        protoWrite(size: low == nil ? 10 : 18) { cursor in
            cursor.key(field, OTLPWire.lengthDelimited)
            cursor.byte(low == nil ? 8 : 16)
            cursor.bigEndian(high)
            if let low { cursor.bigEndian(low) }
        }
    }

    /// A length-delimited sub-message whose size is not known before it is written: `body` writes it, then its
    /// length goes in front of it (one move of the bytes written, which are few).
    @inline(__always)
    mutating func protoMessage(_ field: UInt64, _ body: (inout [UInt8]) -> Void) {
        let start = protoMessageStart(field)
        body(&self)
        protoMessageEnd(start)
    }

    /// `protoMessage` in two steps, for a body that cannot be a closure: the key; the index its body starts at.
    @inline(__always)
    mutating func protoMessageStart(_ field: UInt64) -> Int {
        protoKey(field, OTLPWire.lengthDelimited)
        return count
    }

    /// Puts the length of the body written since `start` in front of it.
    @inline(__always)
    mutating func protoMessageEnd(_ start: Int) {
        let length = UInt64(count - start)
        if length < 0x80 {
            insert(UInt8(length), at: start)
            return
        }
        // A call span and an attempt's are longer than 127 bytes: the body moves up in place by the length's size,
        // where an array made for the prefix and a generic insert cost an allocation per span.
        let prefix = OTLPWire.varintSize(length)
        append(contentsOf: repeatElement(0, count: prefix))
        withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress! + start
            UnsafeMutableRawPointer(base + prefix).copyMemory(from: base, byteCount: Int(length))
            var cursor = ProtoCursor(base)
            cursor.varint(length)
        }
    }

    /// A `KeyValue` (common/v1) with a string value as field `field`: `key` = 1, `value` = 2
    /// (`AnyValue.string_value` = 1).
    @inline(__always)
    mutating func protoAttribute(_ key: StaticString, _ value: String, field: UInt64 = OTLPSpanField.attributes) {
        // The value's bytes are read first and only their pointer goes into the writing closure: a closure that
        // captured the string itself retained and released it, an atomic pair on a string every event loop shares
        // (an operation's, a caller's), about a third of an attribute's cost.
        let written: Void? = value.utf8.withContiguousStorageIfAvailable { text in
            protoAttribute(key, utf8: UnsafeRawBufferPointer(text), field: field)
        }
        if written == nil {
            var contiguous = value
            contiguous.makeContiguousUTF8()
            protoAttribute(key, contiguous, field: field)
        }
    }

    /// A `KeyValue` with a string value given as its UTF-8 bytes.
    @inline(__always)
    mutating func protoAttribute(_ key: StaticString, utf8 value: UnsafeRawBufferPointer, field: UInt64 = OTLPSpanField.attributes) {
        let anyValueLength = OTLPWire.fieldSize(length: value.count)
        protoWrite(size: OTLPWire.keyValueSize(keyLength: OTLPWire.length(of: key), anyValueLength: anyValueLength)) { cursor in
            cursor.keyValueHead(key, anyValueLength: anyValueLength, field: field)
            cursor.key(1, OTLPWire.lengthDelimited)
            cursor.varint(UInt64(value.count))
            cursor.bytes(value)
        }
    }

    /// A `KeyValue` with an integer value (`AnyValue.int_value` = 3).
    @inline(__always)
    mutating func protoAttribute(_ key: StaticString, _ value: Int64, field: UInt64 = OTLPSpanField.attributes) {
        let anyValueLength = 1 + OTLPWire.varintSize(UInt64(bitPattern: value))
        protoWrite(size: OTLPWire.keyValueSize(keyLength: OTLPWire.length(of: key), anyValueLength: anyValueLength)) { cursor in
            cursor.keyValueHead(key, anyValueLength: anyValueLength, field: field)
            cursor.varintField(3, UInt64(bitPattern: value))
        }
    }

    /// A `KeyValue` with a boolean value (`AnyValue.bool_value` = 2).
    @inline(__always)
    mutating func protoAttribute(_ key: StaticString, _ value: Bool, field: UInt64 = OTLPSpanField.attributes) {
        protoWrite(size: OTLPWire.keyValueSize(keyLength: OTLPWire.length(of: key), anyValueLength: 2)) { cursor in
            cursor.keyValueHead(key, anyValueLength: 2, field: field)
            cursor.varintField(2, value ? 1 : 0)
        }
    }
}

/// Field numbers of `Span` (trace/v1). Attributes are field 9 in `Span`, 3 in `Span.Event` and 1 in `Resource`.
enum OTLPSpanField {
    static let traceID: UInt64 = 1
    static let spanID: UInt64 = 2
    static let traceState: UInt64 = 3
    static let parentSpanID: UInt64 = 4
    static let name: UInt64 = 5
    static let kind: UInt64 = 6
    static let start: UInt64 = 7
    static let end: UInt64 = 8
    static let attributes: UInt64 = 9
    static let events: UInt64 = 11
    static let status: UInt64 = 15
}
