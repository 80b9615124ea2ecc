import FuzzSupport
import GatewayCore
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Raw bytes through NIOHTTP1's request decoder (as the ingress configures it), then every check the gateway
/// applies to a head before it picks an operation: `IngressHeadCheck`, `RequestTarget`, the single-valued
/// identity headers, and the catalogue match. Nothing may crash, and an accepted target must be one the gateway
/// can forward verbatim.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestHead(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    do {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    } catch {
        // A parse error: the ingress answers 400 and closes; nothing reaches the stages.
    }
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        if case .head(let head) = part { check(head, input: bytes) }
    }
    return 0
}

private let headCheck = IngressHeadCheck(maxHeaderBytes: 6144, maxHeadersTotalBytes: 20480, maxBodyBytes: 1_048_576)

private func check(_ head: HTTPRequestHead, input: [UInt8]) {
    let headers = HeaderList(head.headers.map { ($0.name, $0.value) })
    let refusal = headCheck.refusal(method: head.method.rawValue, versionMajor: head.version.major, versionMinor: head.version.minor, isHTTP2: false, headers: headers)
    if refusal == nil {
        FuzzSupport.require(headers.values(of: "host").count == 1, "a head without exactly one Host passed", input: input)
        let lengths = headers.values(of: "content-length")
        FuzzSupport.require(lengths.count <= 1 && lengths.allSatisfy { Int($0).map { $0 >= 0 && $0 <= 1_048_576 } == true },
                            "a bad Content-Length passed", input: input)
    }
    _ = try? headers.single("authorization")
    _ = try? headers.single("klarna-gateway-merchant")
    guard let target = try? RequestTarget(parsing: head.uri) else { return }
    let path = target.path
    FuzzSupport.require(path.first == "/", "accepted a target that is not origin-form", input: input)
    FuzzSupport.require(head.uri.utf8.count <= RequestTarget.maximumLength, "accepted an overlong target", input: input)
    FuzzSupport.require(!path.utf8.contains(UInt8(ascii: "\\")), "accepted a backslash", input: input)
    FuzzSupport.require(!path.utf8.contains { $0 < 0x21 || $0 > 0x7E }, "accepted a control or non-ASCII byte", input: input)
    let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    FuzzSupport.require(!segments.contains { $0 == "." || $0 == ".." }, "accepted a dot segment", input: input)
    FuzzSupport.require(path == "/" || !segments.contains { $0.isEmpty }, "accepted an empty segment", input: input)
    let lowered = path.lowercased()
    for encoded in ["%2f", "%5c", "%2e", "%00", "%25", "%3a"] {
        FuzzSupport.require(!lowered.contains(encoded), "accepted the encoded \(encoded)", input: input)
    }
    _ = FuzzSupport.catalogue.matcher.match(method: head.method.rawValue, path: path)
}
