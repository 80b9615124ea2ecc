import AsyncHTTPClient
import Crypto
import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// Sends one delivery: Klarna's body unchanged, Standard Webhooks headers signed with the destination's secret,
/// the gateway's own headers naming merchant, partner and event type, and mTLS when the destination has a client
/// certificate. async-http-client pools connections per destination (keyed by its TLS configuration too).
struct WebhookSender: Sendable {
    let client: HTTPClient
    /// Roots trusted for `https` destinations; nil uses the system's.
    let trustRootsPEM: String?
    let timeout: TimeAmount

    /// What an attempt came to: a status, or why there was none (never a secret).
    struct Result: Sendable {
        var status: Int?
        var error: String?
        var certificateFingerprint: String?
    }

    /// The headers of a delivery, signed at `timestamp` (seconds).
    static func headers(event: WebhookEventRecord, secret: Secret?, timestamp: Int64) -> [(String, String)] {
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"), ("User-Agent", "klarna-gateway-webhooks"),
            ("webhook-id", event.eventID), ("webhook-timestamp", String(timestamp)),
            ("Klarna-Gateway-Partner", event.partnerID), ("Klarna-Gateway-Event-Type", event.eventType),
        ]
        if let merchant = event.merchantID { headers.append(("Klarna-Gateway-Merchant", merchant)) }
        if let secret {
            headers.append(("webhook-signature", StandardWebhookSignature.sign(id: event.eventID, timestamp: timestamp, body: event.body, secret: secret)))
        }
        return headers
    }

    func send(_ event: WebhookEventRecord, to destination: WebhookDestination) async -> Result {
        var request = HTTPClientRequest(url: destination.record.url)
        request.method = .POST
        for (name, value) in Self.headers(event: event, secret: destination.secret, timestamp: Int64(Date().timeIntervalSince1970)) {
            request.headers.add(name: name, value: value)
        }
        request.body = .bytes(ByteBuffer(bytes: event.body))
        var fingerprint: String?
        do {
            if destination.record.url.hasPrefix("https:") {
                var tls = TLSConfiguration.makeClientConfiguration()
                if let trustRootsPEM { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(trustRootsPEM.utf8))) }
                if let pem = destination.record.clientCertificatePEM, let key = destination.clientKeyPEM {
                    let chain = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
                    tls.certificateChain = chain.map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.exposedValue.utf8), format: .pem))
                    fingerprint = try chain.first.map { Hex.encode(SHA256.hash(data: try $0.toDERBytes())) }
                }
                request.tlsConfiguration = tls
            }
            let response = try await client.execute(request, timeout: timeout)
            // Read (and drop) what the receiver said, so the connection goes back to the pool.
            _ = try? await response.body.collect(upTo: 1 << 20)
            return Result(status: Int(response.status.code), error: nil, certificateFingerprint: fingerprint)
        } catch {
            return Result(status: nil, error: Self.describe(error), certificateFingerprint: fingerprint)
        }
    }

    /// A failure as stored and audited: its kind, short, without URLs or headers.
    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        return String(text.prefix(200))
    }
}
