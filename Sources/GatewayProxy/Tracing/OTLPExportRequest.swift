import NIOCore

/// An OTLP `ExportTraceServiceRequest` (collector/trace/v1) around spans the data plane already encoded: one
/// `ResourceSpans` (the gateway's `service.name` and `service.instance.id`) holding one `ScopeSpans`. Encoded as
/// protobuf (`http/protobuf`) or as OTLP/JSON (`http/json`, converted from the same bytes).
public struct OTLPExportRequest: Sendable {
    /// `service.name`.
    public let serviceName: String
    /// `service.instance.id` (the node id).
    public let instanceID: String
    /// The instrumentation scope's name.
    public static let scope = "klarna-gateway"
    /// `ResourceSpans.resource` and `ScopeSpans.scope`, the same in every request, so encoded once.
    private let resource: [UInt8]
    private let scopeField: [UInt8]

    /// Makes a request template for one resource.
    public init(serviceName: String, instanceID: String) {
        self.serviceName = serviceName
        self.instanceID = instanceID
        var resource: [UInt8] = []
        resource.protoMessage(1) { resource in
            resource.protoAttribute("service.name", serviceName, field: 1)
            resource.protoAttribute("service.instance.id", instanceID, field: 1)
        }
        self.resource = resource
        var scope: [UInt8] = []
        scope.protoMessage(1) { $0.protoString(1, Self.scope) }
        scopeField = scope
    }

    /// Whole spans back to back, as a `TraceBuffer` holds them (each a `ScopeSpans.spans` field: key, length,
    /// `Span`), and how many.
    public struct SpanRun: Sendable {
        /// The spans' bytes.
        public var bytes: ArraySlice<UInt8>
        /// Spans in `bytes`.
        public var count: Int

        /// Makes a run.
        public init(bytes: ArraySlice<UInt8>, count: Int) {
            self.bytes = bytes
            self.count = count
        }
    }

    /// `runs` regrouped into batches of `size` spans each, the last one possibly smaller. A run is cut only where a
    /// batch must end, by skipping over that many spans' keys and lengths: a buffer's bytes go into a request whole,
    /// where slicing out every span cost a reference count and an array slot each (docs/performance.md).
    public static func batches(_ runs: [SpanRun], size: Int) -> [[SpanRun]] {
        let size = max(1, size)
        var batches: [[SpanRun]] = []
        var current: [SpanRun] = []
        var room = size
        for run in runs where run.count > 0 {
            var run = run
            while run.count > room {
                let cut = prefixEnd(of: run.bytes, spans: room)
                current.append(SpanRun(bytes: run.bytes[..<cut], count: room))
                run = SpanRun(bytes: run.bytes[cut...], count: run.count - room)
                batches.append(current)
                current = []
                room = size
            }
            current.append(run)
            room -= run.count
            if room == 0 {
                batches.append(current)
                current = []
                room = size
            }
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }

    /// The index just past the first `spans` fields of `bytes`; where reading stopped if it holds fewer (it never
    /// does: the gateway wrote them).
    static func prefixEnd(of bytes: ArraySlice<UInt8>, spans: Int) -> Int {
        var reader = OTLPWireReader(bytes)
        for _ in 0..<spans {
            guard reader.next() != nil else { break }
        }
        return reader.index
    }

    /// The request as protobuf around `runs`, in one buffer sized first, each run's bytes copied into it once.
    public func protobuf(_ runs: [SpanRun], allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var scopeSpans = scopeField.count
        for run in runs { scopeSpans += run.bytes.count }
        let resourceSpans = resource.count + 1 + OTLPWire.varintSize(UInt64(scopeSpans)) + scopeSpans
        var buffer = allocator.buffer(capacity: 1 + OTLPWire.varintSize(UInt64(resourceSpans)) + resourceSpans)
        Self.writeFieldHead(1, length: resourceSpans, to: &buffer)
        buffer.writeBytes(resource)
        Self.writeFieldHead(2, length: scopeSpans, to: &buffer)
        buffer.writeBytes(scopeField)
        for run in runs { buffer.writeBytes(run.bytes) }
        return buffer
    }

    /// A length-delimited field's key and length, written as the spans' own are (`ProtoCursor`).
    private static func writeFieldHead(_ field: UInt64, length: Int, to buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 + OTLPWire.varintSize(UInt64(length))) { room in
            let start = room.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var cursor = ProtoCursor(start)
            cursor.key(field, OTLPWire.lengthDelimited)
            cursor.varint(UInt64(length))
            return cursor.pointer - start
        }
    }

    /// Each span of `runs`, as its `ScopeSpans.spans` field, in order (for `http/json`, which converts span by span).
    public static func spans(of runs: [SpanRun]) -> [ArraySlice<UInt8>] {
        var spans: [ArraySlice<UInt8>] = []
        for run in runs { split(run.bytes, into: &spans) }
        return spans
    }

    private static func split(_ bytes: ArraySlice<UInt8>, into spans: inout [ArraySlice<UInt8>]) {
        var reader = OTLPWireReader(bytes)
        var start = reader.index
        while let field = reader.next() {
            guard field.number == 2 else { break }
            spans.append(bytes[start..<reader.index])
            start = reader.index
        }
    }

    /// The request as OTLP/JSON, holding every span of `spans`.
    public func json(_ spans: [ArraySlice<UInt8>]) -> [UInt8] { json(spans[...]) }

    /// The request as OTLP/JSON: ids in hex, 64-bit integers as strings, enums as numbers, as the OTLP
    /// specification's JSON mapping has them.
    public func json(_ spans: ArraySlice<ArraySlice<UInt8>>) -> [UInt8] {
        var out = JSONText()
        out.raw(#"{"resourceSpans":[{"resource":{"attributes":["#)
        out.attribute("service.name", string: serviceName)
        out.raw(",")
        out.attribute("service.instance.id", string: instanceID)
        out.raw(#"]},"scopeSpans":[{"scope":{"name":"#)
        out.string(Self.scope)
        out.raw(#"},"spans":["#)
        var first = true
        for entry in spans {
            var outer = OTLPWireReader(entry)
            guard let field = outer.next(), field.number == 2 else { continue }
            if !first { out.raw(",") }
            first = false
            out.span(field.bytes)
        }
        out.raw("]}]}]}")
        return out.bytes
    }
}

/// Reads the protobuf wire format: the fields of one message, in order.
struct OTLPWireReader {
    /// One field: its number, and its value as a number (varint, fixed) or bytes (length-delimited).
    struct Field {
        var number: UInt64
        var value: UInt64 = 0
        var bytes: ArraySlice<UInt8> = []
    }

    private let bytes: ArraySlice<UInt8>
    private(set) var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    /// The next field; nil at the end or at a malformed field.
    mutating func next() -> Field? {
        guard let key = varint() else { return nil }
        var field = Field(number: key >> 3)
        switch key & 7 {
        case 0:
            guard let value = varint() else { return nil }
            field.value = value
        case 1, 5:
            let width = key & 7 == 1 ? 8 : 4
            guard bytes.endIndex - index >= width else { return nil }
            for shift in 0..<width { field.value |= UInt64(bytes[index + shift]) << (8 * UInt64(shift)) }
            index += width
        case 2:
            guard let length = varint(), length <= UInt64(bytes.endIndex - index) else { return nil }
            field.bytes = bytes[index..<(index + Int(length))]
            index += Int(length)
        default:
            return nil
        }
        return field
    }

    private mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.endIndex, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
}

/// OTLP/JSON text, written from the protobuf the data plane encoded.
private struct JSONText {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.protoUTF8(text) }

    mutating func string(_ text: some Collection<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0..<0x20:
                raw("\\u00")
                hex(byte, digits: 2)
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func string(_ text: String) { string(Array(text.utf8)) }

    mutating func hex(_ value: UInt8, digits: Int = 2) {
        let alphabet = Array("0123456789abcdef".utf8)
        if digits == 2 { bytes.append(alphabet[Int(value >> 4)]) }
        bytes.append(alphabet[Int(value & 0xF)])
    }

    mutating func hexString(_ id: ArraySlice<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        for byte in id { hex(byte) }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func number(_ value: UInt64, quoted: Bool) {
        if quoted { bytes.append(UInt8(ascii: "\"")) }
        raw(String(value))
        if quoted { bytes.append(UInt8(ascii: "\"")) }
    }

    mutating func attribute(_ key: String, string value: String) {
        raw(#"{"key":"#)
        string(key)
        raw(#","value":{"stringValue":"#)
        string(value)
        raw("}}")
    }

    /// A `KeyValue` message as JSON.
    mutating func keyValue(_ message: ArraySlice<UInt8>) {
        var reader = OTLPWireReader(message)
        var key: ArraySlice<UInt8> = []
        var value: OTLPWireReader.Field?
        while let field = reader.next() {
            if field.number == 1 { key = field.bytes }
            if field.number == 2 {
                var any = OTLPWireReader(field.bytes)
                value = any.next()
            }
        }
        raw(#"{"key":"#)
        string(key)
        raw(#","value":{"#)
        switch value?.number {
        case 1?:
            raw(#""stringValue":"#)
            string(value?.bytes ?? [])
        case 2?:
            raw(value?.value == 0 ? #""boolValue":false"# : #""boolValue":true"#)
        case 3?:
            raw(#""intValue":"#)
            raw("\"\(Int64(bitPattern: value?.value ?? 0))\"")
        case 4?:
            raw(#""doubleValue":"#)
            raw(String(Double(bitPattern: value?.value ?? 0)))
        default:
            break
        }
        raw("}}")
    }

    /// A list of `KeyValue`s (fields `number` of `message`) as `"attributes":[…]`, nothing when there are none.
    mutating func attributes(of message: ArraySlice<UInt8>, field number: UInt64) {
        var reader = OTLPWireReader(message)
        var first = true
        while let field = reader.next() {
            guard field.number == number else { continue }
            raw(first ? #","attributes":["# : ",")
            first = false
            keyValue(field.bytes)
        }
        if !first { raw("]") }
    }

    /// One `Span` message as JSON.
    mutating func span(_ message: ArraySlice<UInt8>) {
        var reader = OTLPWireReader(message)
        raw("{")
        var separator = ""
        func key(_ name: String) {
            raw(separator + "\"" + name + "\":")
            separator = ","
        }
        var events: [ArraySlice<UInt8>] = []
        var status: ArraySlice<UInt8>?
        while let field = reader.next() {
            switch field.number {
            case OTLPSpanField.traceID: key("traceId"); hexString(field.bytes)
            case OTLPSpanField.spanID: key("spanId"); hexString(field.bytes)
            case OTLPSpanField.traceState: key("traceState"); string(field.bytes)
            case OTLPSpanField.parentSpanID: key("parentSpanId"); hexString(field.bytes)
            case OTLPSpanField.name: key("name"); string(field.bytes)
            case OTLPSpanField.kind: key("kind"); number(field.value, quoted: false)
            case OTLPSpanField.start: key("startTimeUnixNano"); number(field.value, quoted: true)
            case OTLPSpanField.end: key("endTimeUnixNano"); number(field.value, quoted: true)
            case OTLPSpanField.events: events.append(field.bytes)
            case OTLPSpanField.status: status = field.bytes
            default: break
            }
        }
        attributes(of: message, field: OTLPSpanField.attributes)
        if !events.isEmpty {
            raw(#","events":["#)
            for (index, event) in events.enumerated() {
                if index > 0 { raw(",") }
                var fields = OTLPWireReader(event)
                raw("{")
                var inner = ""
                while let field = fields.next() {
                    if field.number == 1 {
                        raw(inner + #""timeUnixNano":"#)
                        number(field.value, quoted: true)
                        inner = ","
                    }
                    if field.number == 2 {
                        raw(inner + #""name":"#)
                        string(field.bytes)
                        inner = ","
                    }
                }
                if inner.isEmpty { raw(#""name":"""#) }
                attributes(of: event, field: 3)
                raw("}")
            }
            raw("]")
        }
        if let status {
            raw(#","status":{"#)
            var fields = OTLPWireReader(status)
            var inner = ""
            while let field = fields.next() {
                if field.number == 2 {
                    raw(inner + #""message":"#)
                    string(field.bytes)
                    inner = ","
                }
                if field.number == 3 {
                    raw(inner + #""code":"#)
                    number(field.value, quoted: false)
                    inner = ","
                }
            }
            raw("}")
        }
        raw("}")
    }
}
