/// Checks on a request head that come before any stage reads it: protocol version, `Host`, header sizes,
/// framing headers, upgrades and the declared body size.
///
/// Pure, so the ingress applies it and the request-head fuzz target exercises exactly the same rules.
public struct IngressHeadCheck: Sendable {
    /// Largest single header (name + value + 4 bytes of framing).
    public var maxHeaderBytes: Int
    /// Largest header block.
    public var maxHeadersTotalBytes: Int
    /// Largest declared body.
    public var maxBodyBytes: Int

    /// Makes a check with the ingress limits.
    public init(maxHeaderBytes: Int, maxHeadersTotalBytes: Int, maxBodyBytes: Int) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeadersTotalBytes = maxHeadersTotalBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// The refusal for this head, or nil when it may go on to the stages.
    public func refusal<H: HeaderLookup>(
        method: String, versionMajor: Int, versionMinor: Int, isHTTP2: Bool, headers: H
    ) -> GatewayError? {
        if method == "CONNECT" {
            return GatewayError(.badRequest, "CONNECT is not accepted: the gateway is not a forward proxy.")
        }
        if versionMajor == 1 && versionMinor == 0 {
            return GatewayError(.badRequest, "HTTP/1.0 is not accepted; use HTTP/1.1 or HTTP/2.")
        }
        // One walk over the headers gathers what every check below needs: no array, no second pass.
        var hosts = 0
        var upgrades = 0
        var lengths = 0
        var length: String?
        var lengthMalformed = false
        var total = 0
        var oversize: String?
        headers.forEachHeader { name, value in
            let size = name.utf8.count + value.utf8.count + 4
            if size > maxHeaderBytes && oversize == nil { oversize = name }
            total += size
            if ASCIICase.equals(name, lowercaseName: "host") {
                hosts += 1
            } else if ASCIICase.equals(name, lowercaseName: "upgrade") {
                upgrades += 1
            } else if ASCIICase.equals(name, lowercaseName: "content-length") {
                lengths += 1
                if length == nil { length = value }
                if !Self.isDecimal(value) { lengthMalformed = true }
            }
        }
        if !isHTTP2 && hosts != 1 {
            return GatewayError(.badRequest, "An HTTP/1.1 request needs exactly one Host header.")
        }
        if let oversize {
            return GatewayError(.headersTooLarge, "The header \(oversize.prefix(64)) is larger than \(maxHeaderBytes) bytes.")
        }
        if total > maxHeadersTotalBytes {
            return GatewayError(.headersTooLarge, "The headers are larger than \(maxHeadersTotalBytes) bytes in all.")
        }
        // A protocol switch would let the caller talk past the gateway's checks (h2c smuggling); Klarna needs none.
        if upgrades > 0 {
            return GatewayError(.badRequest, "Protocol upgrades are not accepted.")
        }
        if lengths > 1 || lengthMalformed {
            return GatewayError(.badRequest, "The Content-Length header is invalid or repeated.")
        }
        if let length, length.utf8.count > 18 || Int(length)! > maxBodyBytes {
            return GatewayError(.payloadTooLarge, "The body is larger than \(maxBodyBytes) bytes.")
        }
        return nil
    }

    /// Digits only: `Int("+5")` would accept a sign that another hop may read differently.
    static func isDecimal(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}
