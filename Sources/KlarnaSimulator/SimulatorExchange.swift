import GatewayCore
import NIOHTTP1

/// A complete request as the simulator's router sees it: the TLS layer and HTTP framing are already done.
struct SimulatorRequest: Sendable {
    let method: String
    /// The path without the query string, as sent (a KRN segment stays unescaped).
    let path: Substring
    /// The query string without `?`, or empty.
    let query: Substring
    let headers: HTTPHeaders
    let body: [UInt8]
    /// Who presented which certificate on this connection (nil on plain HTTP or without a certificate).
    let peer: PeerIdentity?

    init(method: String, uri: String, headers: HTTPHeaders, body: [UInt8], peer: PeerIdentity?) {
        self.method = method
        // A byte scan: `firstIndex(of: Character)` walks grapheme clusters and showed up in the profile.
        if let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = uri[..<mark]
            query = uri[uri.index(after: mark)...]
        } else {
            path = uri[...]
            query = ""
        }
        self.headers = headers
        self.body = body
        self.peer = peer
    }

    /// The value of query parameter `name` (no percent-decoding: the simulator's ids never need it).
    func queryItem(_ name: String) -> String? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first == Substring(name) { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
    }
}

/// The client certificate a connection presented, computed once per connection.
struct PeerIdentity: Sendable {
    /// The subject's distinguished name (RFC 4514 style).
    let subject: String
    /// Lowercase hex SHA-256 of the certificate's DER.
    let fingerprint: String
}

/// An answer before it is written: status, extra headers and body bytes.
struct SimulatorResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON answer.
    init(status: Int, headers: [(String, String)] = [], json: JSONValue) {
        self.status = status
        self.headers = [("Content-Type", "application/json")] + headers
        self.body = json.bytes
    }

    /// A JSON answer from bytes already rendered (the hot read path keeps them ready).
    init(status: Int, jsonBytes: [UInt8]) {
        self.status = status
        self.headers = [("Content-Type", "application/json")]
        self.body = jsonBytes
    }

    static let noContent = SimulatorResponse(status: 204)
}

/// What the connection handler must do besides writing the answer: the fault-injection side.
enum ResponseDelivery: Sendable, Equatable {
    /// Write it at once.
    case normal
    /// Wait, then write it.
    case delayed(milliseconds: Int)
    /// Write the head and part of the body, then drop the connection.
    case resetMidResponse
    /// Write nothing and reset the connection (the request was read and acted on).
    case resetBeforeResponse
    /// Write the body in small pieces spread over this long.
    case slowBody(milliseconds: Int)
}

/// The router's full answer: the response and how to deliver it.
struct SimulatorOutcome: Sendable {
    var response: SimulatorResponse
    var delivery: ResponseDelivery = .normal
}
