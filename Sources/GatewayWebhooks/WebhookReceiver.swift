import Crypto
import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOCore

/// The receiving side: verifies a delivery, resolves its merchant, routes it, makes it durable and journals it.
///
/// Verification and routing run on the connection's event loop (an HMAC and a table lookup); the store write is
/// handed to the intake off the loop, and the answer is completed back on the loop, so no event loop ever waits
/// for the database. Nothing here touches the proxy's request path: it reads the proxy's snapshot (merchants)
/// and the webhook directory, both swapped whole on reload.
public final class WebhookReceiver: Sendable {
    /// What the sender is answered.
    public struct Answer: Sendable {
        /// HTTP status.
        public var status: Int
        /// JSON body.
        public var body: String
        /// The gateway request id (`Klarna-Gateway-Request-Id`).
        public var requestID: String
        /// The refusal, for refusals (rendered by `RefusalResponse`).
        public var refusal: GatewayError?
    }

    private let directory: WebhookDirectoryHolder
    private let snapshots: SnapshotHolder
    private let intake: WebhookIntake
    private let journal: any CallJournal
    private let metrics: WebhookMetrics
    private let logger: Logger

    /// Makes a receiver.
    public init(
        directory: WebhookDirectoryHolder, snapshots: SnapshotHolder, intake: WebhookIntake, journal: any CallJournal, metrics: WebhookMetrics,
        logger: Logger
    ) {
        self.directory = directory
        self.snapshots = snapshots
        self.intake = intake
        self.journal = journal
        self.metrics = metrics
        self.logger = logger
    }

    /// One request as the listener read it.
    public struct Request: Sendable {
        /// Method.
        public var method: String
        /// Request target.
        public var target: String
        /// `Klarna-Signing-Key-Id`.
        public var keyID: String?
        /// `Klarna-Signature`.
        public var signature: String?
        /// The raw body (empty when it was too large and not kept).
        public var body: [UInt8]
        /// True when the body went over the limit.
        public var tooLarge: Bool
        /// The sender's address.
        public var clientAddress: String?

        /// Makes a request.
        public init(method: String, target: String, keyID: String?, signature: String?, body: [UInt8], tooLarge: Bool, clientAddress: String?) {
            self.method = method
            self.target = target
            self.keyID = keyID
            self.signature = signature
            self.body = body
            self.tooLarge = tooLarge
            self.clientAddress = clientAddress
        }
    }

    /// Handles a complete request; the future completes on `eventLoop`.
    public func handle(_ request: Request, on eventLoop: any EventLoop) -> EventLoopFuture<Answer> {
        let requestID = RequestID.make()
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let bodyHash = Hex.encode(SHA256.hash(data: request.body))
        let path: String
        let partnerID: String
        switch WebhookReceipt.partner(method: request.method, target: request.target) {
        case .success(let partner):
            partnerID = partner
            path = WebhookReceipt.pathPrefix + partner
        case .failure(let reason):
            // The target is not recorded as sent: it is not a path this listener knows and may be anything.
            return refuse(WebhookReceipt.Refused(reason), request: request, requestID: requestID, now: now, partnerID: nil, path: "?", bodyHash: bodyHash, on: eventLoop)
        }
        if request.tooLarge {
            return refuse(WebhookReceipt.Refused(.tooLarge), request: request, requestID: requestID, now: now, partnerID: partnerID, path: path, bodyHash: bodyHash, on: eventLoop)
        }
        let directory = directory.current
        let verified: WebhookReceipt.Verified
        switch WebhookReceipt.verify(partnerID: partnerID, keyID: request.keyID, signature: request.signature, body: request.body, keys: directory.keys) {
        case .success(let value): verified = value
        case .failure(let refused):
            return refuse(refused, request: request, requestID: requestID, now: now, partnerID: partnerID, path: path, bodyHash: bodyHash, on: eventLoop)
        }
        let envelope = verified.envelope
        // Only a merchant of the partner whose key signed the event: another partner's KRN is unroutable here.
        let merchant = snapshots.current.merchants[account: envelope.subjectAccountID].flatMap { $0.record.partnerID == partnerID ? $0.record : nil }
        let destinations = merchant.map { directory.routes.destinations(eventType: envelope.eventType, merchant: $0) } ?? []
        let event = NewWebhookEvent(
            event: WebhookEventRecord(
                eventID: envelope.eventID, partnerID: partnerID, signingKeyID: verified.keyID, eventType: envelope.eventType,
                account: envelope.subjectAccountID, merchantID: merchant?.id, receivedAtMicros: now, state: .pending, body: request.body),
            destinations: destinations)
        let promise = eventLoop.makePromise(of: Bool.self)
        let intake = intake
        promise.completeWithTask { try await intake.submit(event) }
        return promise.futureResult.flatMap { isNew in
            isNew ? self.metrics.countReceived() : self.metrics.countDuplicate()
            let record = WebhookAuditRecords.receipt(
                requestID: requestID, timeMicros: now, clientAddress: request.clientAddress, partnerID: partnerID, keyID: verified.keyID, envelope: envelope,
                merchantID: merchant?.id, body: request.body, bodySHA256: bodyHash, status: 200, refusal: nil, path: path)
            return self.journal.record(record, on: eventLoop).map {
                let body = "{\"event_id\":\(JSONText.quote(envelope.eventID)),\"status\":\(isNew ? "\"accepted\"" : "\"duplicate\"")}"
                return Answer(status: 200, body: body, requestID: requestID, refusal: nil)
            }.flatMapError { error in
                // Stored but not journaled: fail closed, so Klarna retries and the retry (a duplicate) is journaled.
                self.logger.error("webhook audit record failed", metadata: ["event_id": "\(envelope.eventID)", "error": "\(error)"])
                return eventLoop.makeSucceededFuture(Answer(status: 503, body: "", requestID: requestID, refusal: GatewayError(.auditUnavailable, "The audit trail is unavailable; retry later")))
            }
        }.flatMapError { error in
            self.logger.error("webhook not stored", metadata: ["event_id": "\(envelope.eventID)", "error": "\(error)"])
            return self.refuse(WebhookReceipt.Refused(.notStored), request: request, requestID: requestID, now: now, partnerID: partnerID, path: path, bodyHash: bodyHash, on: eventLoop)
        }
    }

    /// A request the HTTP parser could not read: refused in Klarna's shape and journaled like every refusal (its
    /// target and body are unknown, so neither is recorded).
    public func refuseMalformed(detail: String, clientAddress: String?, on eventLoop: any EventLoop) -> EventLoopFuture<Answer> {
        let request = Request(method: "?", target: "?", keyID: nil, signature: nil, body: [], tooLarge: false, clientAddress: clientAddress)
        return refuse(
            WebhookReceipt.Refused(.malformed, detail: detail), request: request, requestID: RequestID.make(),
            now: Int64(Date().timeIntervalSince1970 * 1_000_000), partnerID: nil, path: "?", bodyHash: Hex.emptySHA256, on: eventLoop)
    }

    /// Journals a refusal and answers it; the refusal is answered even when its record fails (nothing was stored).
    private func refuse(
        _ refused: WebhookReceipt.Refused, request: Request, requestID: String, now: Int64, partnerID: String?, path: String, bodyHash: String,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Answer> {
        metrics.countRejected(refused.reason)
        let error = refused.error
        let record = WebhookAuditRecords.receipt(
            requestID: requestID, timeMicros: now, clientAddress: request.clientAddress, partnerID: partnerID, keyID: nil, envelope: nil,
            merchantID: nil, body: request.body, bodySHA256: bodyHash, status: error.status, refusal: error, path: path)
        let answer = Answer(status: error.status, body: "", requestID: requestID, refusal: error)
        if refused.reason == .unknownKey || refused.reason == .badSignature || refused.reason == .missingSignature {
            logger.warning("webhook refused: signature not verified", metadata: ["reason": "\(refused.reason.rawValue)", "partner": "\(partnerID ?? "-")"])
        }
        return journal.record(record, on: eventLoop).map { answer }.flatMapError { _ in eventLoop.makeSucceededFuture(answer) }
    }
}
