import Foundation
import GatewayTestSupport
import KlarnaSimulator
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A loopback OTLP/HTTP collector: takes `POST /v1/traces` (binary protobuf, or OTLP/JSON when its
/// `Content-Type` says so), decodes the spans with readers that know only the fields the tests look at, and
/// answers an empty `ExportTraceServiceResponse`. With `tls` it serves https, and with `clientCAPEM` it refuses a
/// sender without a client certificate that CA signed, as an mTLS collector does.
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

    /// One export request as received.
    struct Request: Sendable {
        var headers: HTTPHeaders
        var body: [UInt8]
        /// The SHA-256 fingerprint (hex) of the client certificate the sender presented; nil when it sent none.
        var clientCertificate: String?
        var contentType: String? { headers.first(name: "Content-Type") }
        /// Every value of a header, by case-insensitive name.
        func header(_ name: String) -> [String] { headers[name] }
    }

    private let spans = Mutex<[Span]>([])
    private let requests = Mutex<[Request]>([])
    private let channel: any Channel
    private let scheme: String
    private let sink: Sink
    /// Connections accepted so far.
    var connections: Int { sink.connections.withLock { $0 } }
    var port: Int { channel.localAddress?.port ?? 0 }
    var endpoint: String { "\(scheme)://127.0.0.1:\(port)/v1/traces" }

    /// How the receiver treats a connection beyond answering each request.
    enum Manner: Sendable {
        /// Keeps it open for the next request.
        case keepAlive
        /// Says `Connection: close` in every answer, and leaves closing to the sender.
        case announcesClose
        /// Answers a connection's first request; at its second, closes it without answering or keeping the request,
        /// as a collector ending an idle connection just as an export goes out.
        case dropsSecondRequest
    }

    init(tls: TestPKI.Identity? = nil, clientCAPEM: String? = nil, manner: Manner = .keepAlive) async throws {
        let sink = Sink()
        self.sink = sink
        let sslContext = try tls.map { identity in
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem)))
            if let clientCAPEM {
                // Required, not optional: a sender without a certificate of this CA fails the handshake.
                configuration.certificateVerification = .noHostnameVerification
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientCAPEM.utf8)))
            }
            return try NIOSSLContext(configuration: configuration)
        }
        scheme = tls == nil ? "http" : "https"
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(sink: sink, manner: manner))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        sink.receiver.withLock { $0 = self }
    }

    /// Every span received so far.
    var received: [Span] { spans.withLock { $0 } }

    /// Every request received so far.
    var receivedRequests: [Request] { requests.withLock { $0 } }

    /// Every request body received so far, raw (to search for planted secrets).
    var rawBodies: [[UInt8]] { receivedRequests.map(\.body) }

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

    fileprivate func accept(_ request: Request) {
        requests.withLock { $0.append(request) }
        // As a collector does: the Content-Type says which encoding the body is in.
        let json = request.contentType?.lowercased().hasPrefix("application/json") == true
        let decoded = json ? Self.decodeJSON(request.body) : Self.decode(request.body)
        spans.withLock { $0.append(contentsOf: decoded) }
    }

    // MARK: - OTLP/JSON (the protobuf's JSON mapping: ids in hex, 64-bit integers as strings)

    /// `{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}`; nothing when the body is not that.
    static func decodeJSON(_ body: [UInt8]) -> [Span] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return [] }
        var spans: [Span] = []
        for resource in root["resourceSpans"] as? [[String: Any]] ?? [] {
            for scope in resource["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scope["spans"] as? [[String: Any]] ?? [] { spans.append(decodeJSONSpan(span)) }
            }
        }
        return spans
    }

    private static func decodeJSONSpan(_ object: [String: Any]) -> Span {
        var span = Span()
        span.traceID = object["traceId"] as? String ?? ""
        span.spanID = object["spanId"] as? String ?? ""
        span.parentSpanID = object["parentSpanId"] as? String ?? ""
        span.traceState = object["traceState"] as? String ?? ""
        span.name = object["name"] as? String ?? ""
        span.kind = object["kind"] as? Int ?? 0
        for attribute in object["attributes"] as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any] else { continue }
            span.attributes[key] = jsonValue(value)
        }
        span.events = (object["events"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        if let status = object["status"] as? [String: Any] {
            span.statusCode = status["code"] as? Int ?? 0
            span.statusMessage = status["message"] as? String ?? ""
        }
        return span
    }

    /// An `AnyValue` as text, as the protobuf reader gives it. An `intValue` that is a bare number instead of the
    /// string OTLP/JSON requires reads as nothing, so a test comparing it fails.
    private static func jsonValue(_ value: [String: Any]) -> String {
        if let text = value["stringValue"] as? String { return text }
        if let text = value["intValue"] as? String { return text }
        if let flag = value["boolValue"] as? Bool { return flag ? "true" : "false" }
        if let number = value["doubleValue"] as? Double { return String(number) }
        return ""
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

    /// Hands requests from the connection handlers to the receiver.
    private final class Sink: Sendable {
        let receiver = Mutex<OTLPReceiver?>(nil)
        let connections = Mutex(0)
        func accept(_ request: Request) { receiver.withLock { $0 }?.accept(request) }
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let sink: Sink
        let manner: Manner
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var requests = 0

        init(sink: Sink, manner: Manner) {
            self.sink = sink
            self.manner = manner
        }

        func channelActive(context: ChannelHandlerContext) {
            sink.connections.withLock { $0 += 1 }
            context.fireChannelActive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // A sender that does not trust this collector's certificate, or presents none, ends the handshake.
            context.close(promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                requests += 1
                if manner == .dropsSecondRequest && requests == 2 {
                    context.close(promise: nil)
                    return
                }
                if let head, head.method == .POST && head.uri == "/v1/traces" {
                    let peer = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate?.toDERBytes()
                    sink.accept(Request(headers: head.headers, body: body, clientCertificate: peer.map { SimulatorPKI.fingerprint(der: $0) }))
                }
                let ok = head?.uri == "/v1/traces"
                var headers = HTTPHeaders([("Content-Type", "application/x-protobuf"), ("Content-Length", "0")])
                if manner == .announcesClose || head?.isKeepAlive == false { headers.add(name: "Connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: ok ? .ok : .notFound, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
