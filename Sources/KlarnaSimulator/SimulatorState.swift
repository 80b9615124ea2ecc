import Foundation
import GatewayCore

/// A payment request with its owner and the data it was created with.
struct PaymentRequestRecord: Sendable {
    let id: String
    let merchant: String?
    let acquirer: AcquirerInfo
    var state: PaymentRequestState
    var currency: String
    var amount: Int
    var reference: String?
    var extra: [(String, JSONValue)]
    var paymentToken: String?
    var paymentTransactionID: String?
    let createdAt: Int64
    var updatedAt: Int64
    let expiresAt: Int64

    var json: JSONValue {
        var stateContext: [(String, JSONValue)] = []
        switch state {
        case .submitted, .inProgress:
            stateContext.append(("customer_interaction", [
                "method": "HANDOVER", "payment_request_id": .string(id),
                "payment_request_url": .string("https://pay.test.klarna.com/l/\(id.split(separator: ":").last ?? "")"),
            ]))
        case .completed:
            if let paymentToken { stateContext.append(("payment_token", .string(paymentToken))) }
            if let paymentTransactionID { stateContext.append(("payment_transaction_id", .string(paymentTransactionID))) }
        default: break
        }
        var members: [(String, JSONValue)] = [
            ("payment_request_id", .string(id)), ("state", .string(state.rawValue)), ("state_context", .object(stateContext)),
            ("currency", .string(currency)), ("amount", .int(amount)), ("payment_request_reference", reference.json),
        ]
        members += extra
        members += [
            ("created_at", .string(SimulatorClock.iso8601(createdAt))), ("updated_at", .string(SimulatorClock.iso8601(updatedAt))),
            ("expires_at", .string(SimulatorClock.iso8601(expiresAt))),
        ]
        return .object(members)
    }
}

/// A capture or refund of a transaction.
struct MovementRecord: Sendable {
    let id: String
    let transactionID: String
    let merchant: String?
    let amount: Int
    var refunded: Int = 0
    let reference: String?
    let createdAt: Int64

    func json(kind: String, currency: String) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("payment_\(kind)_id", .string(id)), ("payment_transaction_id", .string(transactionID)), ("amount", .int(amount)),
            ("currency", .string(currency)), ("\(kind)_reference", reference.json), ("created_at", .string(SimulatorClock.iso8601(createdAt))),
        ]
        if kind == "capture" { members.append(("refunded_amount", .int(refunded))) }
        return .object(members)
    }
}

/// A payment transaction: its ledger plus the JSON reads are answered with, rendered once per change so the hot
/// `GET` path only copies bytes.
struct TransactionRecord: Sendable {
    let id: String
    let merchant: String?
    let acquirer: AcquirerInfo
    let currency: String
    var ledger: TransactionLedger
    var reference: String?
    var merchantReferences: JSONValue?
    let paymentRequestID: String?
    var captureIDs: [String] = []
    var refundIDs: [String] = []
    let createdAt: Int64
    var updatedAt: Int64
    var rendered: [UInt8] = []

    mutating func render() {
        var members: [(String, JSONValue)] = [
            ("payment_transaction_id", .string(id)), ("payment_transaction_reference", reference.json),
            ("state", .string(ledger.state.rawValue)), ("currency", .string(currency)),
            ("original_amount", .int(ledger.authorized)), ("authorized_amount", .int(ledger.remainingAuthorized)),
            ("captured_amount", .int(ledger.captured)), ("refunded_amount", .int(ledger.refunded)),
            ("voided_amount", .int(ledger.voided)), ("payment_request_id", paymentRequestID.json),
            ("captures", .array(captureIDs.map { .string($0) })), ("refunds", .array(refundIDs.map { .string($0) })),
        ]
        if let merchantReferences { members.append(("merchant_references", merchantReferences)) }
        members += [("created_at", .string(SimulatorClock.iso8601(createdAt))), ("updated_at", .string(SimulatorClock.iso8601(updatedAt)))]
        rendered = JSONValue.object(members).bytes
    }
}

/// A webhook signing key; the secret is shown once, on creation.
struct SigningKeyRecord: Sendable {
    let id: String
    let acquirer: String
    let secret: String
    let createdAt: Int64

    var json: JSONValue {
        ["signing_key_id": .string(id), "created_at": .string(SimulatorClock.iso8601(createdAt))]
    }
}

/// A registered webhook.
struct WebhookRecord: Sendable {
    let id: String
    let acquirer: String
    var url: String
    var eventTypes: [String]
    var eventVersion: String
    var signingKeyID: String
    var status: String
    let createdAt: Int64

    var json: JSONValue {
        [
            "webhook_id": .string(id), "url": .string(url), "event_types": .array(eventTypes.map { .string($0) }),
            "event_version": .string(eventVersion), "signing_key_id": .string(signingKeyID), "status": .string(status),
            "created_at": .string(SimulatorClock.iso8601(createdAt)),
        ]
    }

    /// Klarna's wildcards: `*` for everything, `payment.*` for a prefix, else exact.
    func subscribes(to eventType: String) -> Bool {
        guard status == "ENABLED" else { return false }
        return eventTypes.contains { pattern in
            if pattern == "*" { return true }
            if pattern.hasSuffix("*") { return eventType.hasPrefix(pattern.dropLast()) }
            return pattern == eventType
        }
    }
}

/// A dispute, seeded.
struct DisputeRecord: Sendable {
    let id: String
    let merchant: String
    let transactionID: String
    let amount: Int
    let currency: String
    let reason: String
    var state: String
    var responses: [JSONValue] = []
    var attachments: [String] = []
    let openedAt: Int64

    var json: JSONValue {
        [
            "payment_dispute_id": .string(id), "payment_transaction_id": .string(transactionID), "state": .string(state),
            "reason": .string(reason), "amount": .int(amount), "currency": .string(currency),
            "opened_at": .string(SimulatorClock.iso8601(openedAt)),
            "deadline_at": .string(SimulatorClock.iso8601(openedAt + 14 * 86_400_000)),
            "merchant_responses": .array(responses), "attachments": .array(attachments.map { .string($0) }),
        ]
    }
}

/// A settlement, seeded, with generated transactions.
struct SettlementRecord: Sendable {
    let id: String
    let acquirer: String
    let currency: String
    let amount: Int
    let transactions: [(id: String, merchant: String, amount: Int, fee: Int)]
    var payoutStatus: String
    let createdAt: Int64

    var json: JSONValue {
        [
            "settlement_id": .string(id), "currency": .string(currency), "net_amount": .int(amount),
            "gross_amount": .int(transactions.reduce(0) { $0 + $1.amount }), "fee_amount": .int(transactions.reduce(0) { $0 + $1.fee }),
            "transaction_count": .int(transactions.count), "payout": ["status": .string(payoutStatus)],
            "created_at": .string(SimulatorClock.iso8601(createdAt)),
        ]
    }
}

/// A client certificate issued from a CSR.
struct ClientCertificateRecord: Sendable {
    let id: String
    let acquirer: String
    let certificatePEM: String
    let fingerprint: String
    let subject: String
    var status: String
    let createdAt: Int64
    let expiresAt: Int64

    var json: JSONValue {
        [
            "credential_id": .string(id), "type": "CLIENT_CERTIFICATE", "status": .string(status),
            "config": ["usage": "MTLS"], "certificate": .string(certificatePEM), "fingerprint_sha256": .string(fingerprint),
            "subject": .string(subject), "created_at": .string(SimulatorClock.iso8601(createdAt)),
            "expires_at": .string(SimulatorClock.iso8601(expiresAt)),
        ]
    }
}

/// An event for webhooks, before it is matched against registrations.
struct SimulatorEvent: Sendable {
    let type: String
    let acquirer: AcquirerInfo
    let merchant: String?
    let payload: JSONValue
}

/// Everything the simulator remembers between calls; guarded by one lock in `Simulator`.
struct SimulatorState: Sendable {
    var keys = KeyRing()
    var paymentRequests: [String: PaymentRequestRecord] = [:]
    var transactions: [String: TransactionRecord] = [:]
    var captures: [String: MovementRecord] = [:]
    var refunds: [String: MovementRecord] = [:]
    /// Payment token → payment request it came from.
    var paymentTokens: [String: String] = [:]
    var signingKeys: [String: SigningKeyRecord] = [:]
    var webhooks: [String: WebhookRecord] = [:]
    var disputes: [String: DisputeRecord] = [:]
    var disputeOrder: [String] = []
    var settlements: [String: SettlementRecord] = [:]
    var settlementOrder: [String] = []
    var clientCertificates: [String: ClientCertificateRecord] = [:]
    var clientCertificateOrder: [String] = []
    /// Acquirer id → `enforced_from` value.
    var enforcement: [String: String] = [:]
    var idempotency = IdempotencyCache()
}

/// Fresh ids in Klarna's styles.
enum SimulatorID {
    static func uuid() -> String { UUID().uuidString.lowercased() }
    static func krn(_ kind: String) -> String { "krn:payment:eu1:\(kind):\(uuid())" }
    static func short(_ prefix: String) -> String { "\(prefix)_\(uuid().replacingOccurrences(of: "-", with: "").prefix(20))" }
    static func secret(bytes: Int = 24) -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<bytes).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }
}
