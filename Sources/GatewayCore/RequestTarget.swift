/// The request target of an ingress request, checked before anything else reads it.
///
/// Only origin-form (`/path?query`) is accepted: absolute-form and authority-form targets are for forward
/// proxies, and accepting them would let a caller name the upstream. Dot segments, empty segments,
/// backslashes, control bytes and percent-encoded `/`, `\`, `.`, `:` or NUL are refused rather than
/// normalised, because the gateway must forward exactly the path it authorised.
public struct RequestTarget: Sendable, Hashable {
    /// The path, without the query string.
    public let path: Substring
    /// The query string without `?`, if any.
    public let query: Substring?

    /// The longest target accepted; Klarna's longest template with KRNs fits in well under 1 KiB.
    public static let maximumLength = 4096

    /// Validates a raw request target.
    public init(parsing raw: String) throws(GatewayError) {
        guard raw.utf8.count <= RequestTarget.maximumLength else {
            throw GatewayError(.uriTooLong, "The request target is longer than \(RequestTarget.maximumLength) bytes.")
        }
        guard raw.utf8.first == UInt8(ascii: "/") else {
            throw GatewayError(.badRequest, "Only origin-form request targets ('/v2/...') are accepted.")
        }
        // Byte searches: a Character search walks grapheme clusters, and this runs for every request.
        let pathEnd = raw.firstIndex(ofByte: UInt8(ascii: "?")) ?? raw.endIndex
        let path = raw[raw.startIndex..<pathEnd]
        let query = pathEnd == raw.endIndex ? nil : raw[raw.utf8.index(after: pathEnd)...]

        // Scanned through a pointer where the bytes are contiguous (a native string's always are): stepping a
        // substring's UTF-8 iterator checks its bounds and index per byte, and this runs for every request.
        let problem = path.utf8.withBytes(Self.problem(inPath:))
        if let problem { throw problem }
        if path.utf8.count > 1 && path.utf8.last == UInt8(ascii: "/") {
            throw GatewayError(.badRequest, "The path ends with '/'.")
        }
        if let query {
            if query.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: "#") }) {
                throw GatewayError(.badRequest, "The query string contains a byte that is not allowed.")
            }
            for name in RequestTarget.parameterNames(of: query) where RequestTarget.isCredentialName(name) {
                throw GatewayError(.badRequest, "Credentials are not accepted in the query string ('\(name)').")
            }
        }
        self.path = path
        self.query = query
    }

    /// What is wrong with a path's bytes, if anything: control and non-ASCII bytes, malformed or dangerous
    /// percent-encodings, empty and dot segments. Returned, not thrown: the standard library's pointer access
    /// rethrows untyped errors.
    private static func problem(inPath bytes: UnsafeBufferPointer<UInt8>) -> GatewayError? {
        var previous: UInt8 = 0
        var segmentLength = 0
        var segmentDots = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "#") {
                return GatewayError(.badRequest, "The path contains a byte that is not allowed in a Klarna path.")
            }
            if byte == UInt8(ascii: "%") {
                guard index + 1 < bytes.count, let decoded = hexPair(bytes[index], bytes[index + 1]) else {
                    return GatewayError(.badRequest, "The path contains a malformed percent-encoding.")
                }
                index += 2
                // Encoded separators, dots, colons, percent signs (double encoding) and control bytes would mean
                // something different to the gateway and to Klarna; refuse them instead of guessing.
                if decoded < 0x20 || decoded >= 0x7F || "/\\.:%?#".utf8.contains(decoded) {
                    return GatewayError(.badRequest, "The path contains a percent-encoded character that is not allowed.")
                }
            }
            if byte == UInt8(ascii: "/") {
                if previous == UInt8(ascii: "/") { return GatewayError(.badRequest, "The path contains an empty segment.") }
                if segmentLength > 0 && segmentLength == segmentDots { return dotSegment }
                segmentLength = 0
                segmentDots = 0
            } else {
                segmentLength += 1
                if byte == UInt8(ascii: ".") { segmentDots += 1 }
            }
            previous = byte
        }
        if segmentLength > 0 && segmentLength == segmentDots { return dotSegment }
        return nil
    }

    static let dotSegment = GatewayError(.badRequest, "The path contains a '.' or '..' segment.")

    /// The query's parameter names in order, without values (what the audit trail records).
    public static func parameterNames(of query: Substring) -> [Substring] {
        query.split(separator: "&").map { pair in pair.split(separator: "=", maxSplits: 1).first ?? pair }
    }

    /// Names that carry credentials; a caller sending one in a URL is leaking it to every log on the way.
    static func isCredentialName(_ name: Substring) -> Bool {
        let lowered = name.lowercased()
        return ["api_key", "apikey", "api-key", "key", "token", "access_token", "password", "secret", "authorization",
                "client_secret"].contains(lowered)
    }

    private static func hexPair(_ high: UInt8, _ low: UInt8) -> UInt8? {
        guard let h = hexValue(high), let l = hexValue(low) else { return nil }
        return h << 4 | l
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
