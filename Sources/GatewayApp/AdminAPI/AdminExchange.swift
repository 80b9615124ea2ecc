import Foundation
import GatewayCore
import GatewayProxy
import NIOHTTP1

/// A request to the admin API as the listener read it.
public struct AdminRequest: Sendable {
    /// `GET`, `POST`, `PUT` …
    public var method: String
    /// The request target as sent (path and query).
    public var target: String
    /// The request headers.
    public var headers: HTTPHeaders
    /// The body (bounded by the listener).
    public var body: [UInt8]
    /// The peer's address.
    public var clientAddress: String?
    /// Whether the body was over the listener's bound (then `body` is empty and the request is refused).
    public var bodyTooLarge: Bool
    /// The lowercase hex SHA-256 of the client certificate the TLS listener verified; nil when none was presented.
    public var clientCertificateFingerprint: String?

    /// Makes a request.
    public init(
        method: String, target: String, headers: HTTPHeaders, body: [UInt8], clientAddress: String?, bodyTooLarge: Bool = false,
        clientCertificateFingerprint: String? = nil
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
        self.bodyTooLarge = bodyTooLarge
        self.clientCertificateFingerprint = clientCertificateFingerprint
    }

    /// How an authenticated admin proved itself: what it presented, since a request is authenticated only when
    /// every credential it presents names the account (as `CallerAuthentication` decides for callers).
    var authenticationMethod: AuthenticationMethod {
        switch (headers.contains(name: "Authorization"), clientCertificateFingerprint != nil) {
        case (true, true): .tokenAndCertificate
        case (false, true): .certificate
        default: .token
        }
    }

    /// The path, without the query.
    var path: String { target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target }

    /// The query's parameters, percent-decoded (`+` as a space); the last of a repeated name wins.
    var query: [String: String] {
        guard let start = target.firstIndex(of: "?") else { return [:] }
        var parameters: [String: String] = [:]
        for pair in target[target.index(after: start)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String? { text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else { continue }
            parameters[name] = value
        }
        return parameters
    }
}

/// An answer of the admin API: a head and a JSON body.
public struct AdminResponse: Sendable {
    /// The response head.
    public let head: HTTPResponseHead
    /// The body.
    public let body: String

    /// A JSON answer carrying the request id (and an `ETag` when given).
    init(_ status: HTTPResponseStatus, json: JSONValue, requestID: String, etag: String? = nil) {
        self.init(status, text: json.text, contentType: "application/json", requestID: requestID, etag: etag)
    }

    /// An answer of any text.
    init(_ status: HTTPResponseStatus, text: String, contentType: String, requestID: String, etag: String? = nil) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "Klarna-Gateway-Request-Id", value: requestID)
        headers.add(name: "Cache-Control", value: "no-store")
        if let etag { headers.add(name: "ETag", value: etag) }
        head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        body = text
    }

    /// A refusal in the gateway's one error shape (`RefusalResponse`), the request id as `error_id`.
    init(refusal error: GatewayError, requestID: String) {
        let refusal = RefusalResponse(error, requestID: requestID, generatedKey: nil, close: false)
        var head = refusal.head
        head.headers.add(name: "Cache-Control", value: "no-store")
        self.head = head
        body = refusal.body
    }
}
