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

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func protoVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        append(UInt8(value))
    }

    /// A field's key; every field number the gateway writes is below 16, so it is always one byte.
    @inline(__always)
    mutating func protoKey(_ field: UInt64, _ wireType: UInt64) { append(UInt8(truncatingIfNeeded: field << 3 | wireType)) }

    @inline(__always)
    mutating func protoVarintField(_ field: UInt64, _ value: UInt64) {
        protoKey(field, OTLPWire.varintType)
        protoVarint(value)
    }

    /// A fixed64 field, little-endian (timestamps in nanoseconds).
    @inline(__always)
    mutating func protoFixed64(_ field: UInt64, _ value: UInt64) {
        protoKey(field, OTLPWire.fixed64Type)
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Raw bytes of `text` (UTF-8), without key or length.
    @inline(__always)
    mutating func protoUTF8(_ text: String) {
        // Read in place: copying the string to call the mutating `withUTF8` cost a retain and a release each.
        if text.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil { append(contentsOf: text.utf8) }
    }

    @inline(__always)
    mutating func protoString(_ field: UInt64, _ text: String) {
        protoKey(field, OTLPWire.lengthDelimited)
        protoVarint(UInt64(text.utf8.count))
        protoUTF8(text)
    }

    /// A span id (`high` alone) or a trace id (`high` then `low`) as its bytes, big-endian.
    @inline(__always)
    mutating func protoID(_ field: UInt64, _ high: UInt64, _ low: UInt64? = nil) {
        protoKey(field, OTLPWire.lengthDelimited)
        if let low {
            append(16)
            Swift.withUnsafeBytes(of: high.bigEndian) { append(contentsOf: $0) }
            Swift.withUnsafeBytes(of: low.bigEndian) { append(contentsOf: $0) }
        } else {
            append(8)
            Swift.withUnsafeBytes(of: high.bigEndian) { append(contentsOf: $0) }
        }
    }

    /// A length-delimited sub-message whose size is not known before it is written: `body` writes it, then its
    /// length goes in front of it (one move of the bytes written, which are few).
    @inline(__always)
    mutating func protoMessage(_ field: UInt64, _ body: (inout [UInt8]) -> Void) {
        protoKey(field, OTLPWire.lengthDelimited)
        let start = count
        body(&self)
        let length = UInt64(count - start)
        if length < 0x80 {
            insert(UInt8(length), at: start)
        } else {
            var prefix: [UInt8] = []
            prefix.protoVarint(length)
            insert(contentsOf: prefix, at: start)
        }
    }

    /// A `KeyValue` (common/v1) with a string value as field `field`: `key` = 1, `value` = 2
    /// (`AnyValue.string_value` = 1).
    mutating func protoAttribute(_ key: String, _ value: String, field: UInt64 = OTLPSpanField.attributes) {
        protoKeyValueHead(key, anyValueLength: OTLPWire.fieldSize(length: value.utf8.count), field: field)
        protoString(1, value)
    }

    /// A `KeyValue` with an integer value (`AnyValue.int_value` = 3).
    mutating func protoAttribute(_ key: String, _ value: Int64, field: UInt64 = OTLPSpanField.attributes) {
        protoKeyValueHead(key, anyValueLength: 1 + OTLPWire.varintSize(UInt64(bitPattern: value)), field: field)
        protoVarintField(3, UInt64(bitPattern: value))
    }

    /// A `KeyValue` with a boolean value (`AnyValue.bool_value` = 2).
    mutating func protoAttribute(_ key: String, _ value: Bool, field: UInt64 = OTLPSpanField.attributes) {
        protoKeyValueHead(key, anyValueLength: 2, field: field)
        protoVarintField(2, value ? 1 : 0)
    }

    /// A `KeyValue`'s framing up to its `AnyValue`'s content, which is `anyValueLength` bytes: the three kinds of
    /// attribute differ only in that content.
    @inline(__always)
    private mutating func protoKeyValueHead(_ key: String, anyValueLength: Int, field: UInt64) {
        let keyLength = key.utf8.count
        protoKey(field, OTLPWire.lengthDelimited)
        protoVarint(UInt64(OTLPWire.fieldSize(length: keyLength) + OTLPWire.fieldSize(length: anyValueLength)))
        protoKey(1, OTLPWire.lengthDelimited)
        protoVarint(UInt64(keyLength))
        protoUTF8(key)
        protoKey(2, OTLPWire.lengthDelimited)
        protoVarint(UInt64(anyValueLength))
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
