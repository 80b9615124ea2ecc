import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A loopback OTLP/HTTP collector: takes `POST /v1/traces` (binary protobuf, as the gateway sends it), decodes
/// the spans with a reader of the protobuf wire format that knows only the fields the tests look at, and answers
/// an empty `ExportTraceServiceResponse`.
final class OTLPReceiver: Sendable {
    /// One exported span.
    struct Span: Sendable {
        var traceID = ""
        var spanID = ""
        var parentSpanID = ""
        var traceState = ""
        var name = ""
        var kind = 0
        var attributes: [String: String] = [:]
        var events: [String] = []
        /// `Status.code`: 0 unset, 1 ok, 2 error.
        var statusCode = 0
        var statusMessage = ""
    }

    private let spans = Mutex<[Span]>([])
    private let bodies = Mutex<[[UInt8]]>([])
    private let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }
    var endpoint: String { "http://127.0.0.1:\(port)/v1/traces" }

    init() async throws {
        let sink = Sink()
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(sink: sink))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        sink.receiver.withLock { $0 = self }
    }

    /// Every span received so far.
    var received: [Span] { spans.withLock { $0 } }

    /// Every request body received so far, raw (to search for planted secrets).
    var rawBodies: [[UInt8]] { bodies.withLock { $0 } }

    /// Waits (up to `timeout`) until `done` holds for the spans received.
    func waitFor(timeout: Duration = .seconds(20), _ done: ([Span]) -> Bool) async throws -> [Span] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let got = received
            if done(got) { return got }
            try await Task.sleep(for: .milliseconds(50))
        }
        return received
    }

    func stop() async throws { try await channel.close() }

    fileprivate func accept(_ body: [UInt8]) {
        bodies.withLock { $0.append(body) }
        let decoded = Self.decode(body)
        spans.withLock { $0.append(contentsOf: decoded) }
    }

    // MARK: - Protobuf (opentelemetry/proto/collector/trace/v1, trace/v1, common/v1)

    /// ExportTraceServiceRequest(1: ResourceSpans(2: ScopeSpans(2: Span))).
    static func decode(_ body: [UInt8]) -> [Span] {
        var spans: [Span] = []
        for (field, resource) in Wire.fields(body[...]) where field == 1 {
            for (field, scope) in Wire.fields(resource.bytes) where field == 2 {
                for (field, span) in Wire.fields(scope.bytes) where field == 2 { spans.append(decodeSpan(span.bytes)) }
            }
        }
        return spans
    }

    private static func decodeSpan(_ bytes: ArraySlice<UInt8>) -> Span {
        var span = Span()
        for (field, value) in Wire.fields(bytes) {
            switch field {
            case 1: span.traceID = hex(value.bytes)
            case 2: span.spanID = hex(value.bytes)
            case 3: span.traceState = value.text
            case 4: span.parentSpanID = hex(value.bytes)
            case 5: span.name = value.text
            case 6: span.kind = Int(value.number)
            case 9:
                let (key, text) = keyValue(value.bytes)
                span.attributes[key] = text
            case 11:
                for (field, part) in Wire.fields(value.bytes) where field == 2 { span.events.append(part.text) }
            case 15:
                for (field, part) in Wire.fields(value.bytes) {
                    if field == 2 { span.statusMessage = part.text }
                    if field == 3 { span.statusCode = Int(part.number) }
                }
            default: break
            }
        }
        return span
    }

    /// KeyValue(1: key, 2: AnyValue(1: string, 2: bool, 3: int, 4: double)), the value as text.
    private static func keyValue(_ bytes: ArraySlice<UInt8>) -> (String, String) {
        var key = ""
        var text = ""
        for (field, value) in Wire.fields(bytes) {
            if field == 1 { key = value.text }
            if field == 2 {
                for (kind, any) in Wire.fields(value.bytes) {
                    switch kind {
                    case 1: text = any.text
                    case 2: text = any.number == 0 ? "false" : "true"
                    case 3: text = String(Int64(bitPattern: any.number))
                    case 4: text = String(Double(bitPattern: any.number))
                    default: break
                    }
                }
            }
        }
        return (key, text)
    }

    private static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// The protobuf wire format: varints, 64- and 32-bit fixed values and length-delimited fields.
    enum Wire {
        struct Value {
            var number: UInt64 = 0
            var bytes: ArraySlice<UInt8> = []
            var text: String { String(decoding: bytes, as: UTF8.self) }
        }

        static func fields(_ bytes: ArraySlice<UInt8>) -> [(Int, Value)] {
            var out: [(Int, Value)] = []
            var index = bytes.startIndex
            func varint() -> UInt64? {
                var value: UInt64 = 0
                var shift: UInt64 = 0
                while index < bytes.endIndex {
                    let byte = bytes[index]
                    index += 1
                    value |= UInt64(byte & 0x7F) << shift
                    if byte & 0x80 == 0 { return value }
                    shift += 7
                }
                return nil
            }
            while index < bytes.endIndex, let key = varint() {
                var value = Value()
                switch key & 7 {
                case 0:
                    guard let number = varint() else { return out }
                    value.number = number
                case 1, 5:
                    let width = key & 7 == 1 ? 8 : 4
                    guard bytes.endIndex - index >= width else { return out }
                    for (shift, byte) in bytes[index..<(index + width)].enumerated() { value.number |= UInt64(byte) << (8 * UInt64(shift)) }
                    index += width
                case 2:
                    guard let length = varint(), bytes.endIndex - index >= Int(length) else { return out }
                    value.bytes = bytes[index..<(index + Int(length))]
                    index += Int(length)
                default:
                    return out
                }
                out.append((Int(key >> 3), value))
            }
            return out
        }
    }

    /// Hands bodies from the connection handlers to the receiver.
    private final class Sink: Sendable {
        let receiver = Mutex<OTLPReceiver?>(nil)
        func accept(_ body: [UInt8]) { receiver.withLock { $0 }?.accept(body) }
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let sink: Sink
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(sink: Sink) { self.sink = sink }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                if head?.method == .POST && head?.uri == "/v1/traces" { sink.accept(body) }
                let ok = head?.uri == "/v1/traces"
                var headers = HTTPHeaders([("Content-Type", "application/x-protobuf"), ("Content-Length", "0")])
                if head?.isKeepAlive == false { headers.add(name: "Connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: ok ? .ok : .notFound, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
