import AsyncHTTPClient
import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// Klarna's notification API (`/v2/notification/…`) called as the partner itself: its `Authorization`, its mTLS
/// client certificate, its base URL. Used by `webhooks register` and `webhooks keys rotate`; a signing key's
/// secret comes back once, is handed to the caller as a `Secret` and is never logged or put in an error.
public struct KlarnaNotificationClient: Sendable {
    private let partner: PartnerState
    private let trustRootsPEM: String?

    /// A failure of one call: the status and Klarna's `error_code`/`error_message` (never the request or a secret).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// What failed.
        public let description: String
    }

    /// A client for `partner`; `trustRootsPEM` replaces the system roots (the config's `upstream.ca_file`).
    public init(partner: PartnerState, trustRootsPEM: String?) {
        self.partner = partner
        self.trustRootsPEM = trustRootsPEM
    }

    /// `POST /v2/notification/signing-keys`: a new key; its secret is shown this once.
    public func createSigningKey() async throws -> (id: String, secret: Secret) {
        let json = try await call(.POST, "/v2/notification/signing-keys", body: [:])
        guard let id = json["signing_key_id"] as? String ?? json["id"] as? String, let secret = json["signing_key"] as? String, !secret.isEmpty else {
            throw Failure(description: "Klarna's answer to creating a signing key has no signing_key_id or signing_key")
        }
        return (id, Secret(secret))
    }

    /// `POST /v2/notification/webhooks`: a webhook to `url` signed with `signingKeyID`; returns its id.
    public func createWebhook(url: String, eventTypes: [String], eventVersion: String?, signingKeyID: String) async throws -> String {
        var body: [String: Any] = ["url": url, "event_types": eventTypes, "signing_key_id": signingKeyID]
        if let eventVersion { body["event_version"] = eventVersion }
        let json = try await call(.POST, "/v2/notification/webhooks", body: body)
        guard let id = json["webhook_id"] as? String ?? json["id"] as? String else {
            throw Failure(description: "Klarna's answer to creating a webhook has no webhook_id")
        }
        return id
    }

    /// `GET /v2/notification/webhooks`: every webhook's id and signing key id.
    public func listWebhooks() async throws -> [(id: String, signingKeyID: String)] {
        let json = try await call(.GET, "/v2/notification/webhooks", body: nil)
        let hooks = json["webhooks"] as? [[String: Any]] ?? []
        return hooks.compactMap { hook in
            guard let id = hook["webhook_id"] as? String ?? hook["id"] as? String, let key = hook["signing_key_id"] as? String else { return nil }
            return (id, key)
        }
    }

    /// `PATCH /v2/notification/webhooks/{id}`: moves a webhook to another signing key.
    public func moveWebhook(id: String, to signingKeyID: String) async throws {
        _ = try await call(.PATCH, "/v2/notification/webhooks/\(id)", body: ["signing_key_id": signingKeyID])
    }

    private func call(_ method: HTTPMethod, _ path: String, body: [String: Any]?) async throws -> [String: Any] {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        do {
            let json = try await send(client, method, path, body: body)
            try await client.shutdown()
            return json
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func send(_ client: HTTPClient, _ method: HTTPMethod, _ path: String, body: [String: Any]?) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: partner.record.baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: partner.authorization.exposedValue)
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "klarna-gateway-admin")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let trustRootsPEM { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(trustRootsPEM.utf8))) }
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(partner.clientIdentity.certificateChainPEM.utf8)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(partner.clientIdentity.privateKeyPEM.exposedValue.utf8), format: .pem))
        request.tlsConfiguration = tls
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        guard (200..<300).contains(Int(response.status.code)) else {
            let code = json["error_code"] as? String ?? "-"
            let message = json["error_message"] as? String ?? ""
            throw Failure(description: "Klarna answered \(method.rawValue) \(path) with \(response.status.code) \(code) \(message)")
        }
        return json
    }
}
