/// The amounts of one payment transaction and the rules Klarna puts on them, as a value type.
///
/// Captures never exceed what is authorised and not yet captured or voided; refunds never exceed what is captured
/// and not yet refunded; a transaction allows at most 200 captures, 200 refunds and 500 operations in all.
public struct TransactionLedger: Sendable, Equatable {
    /// Klarna's per-transaction limits.
    public static let maximumCaptures = 200
    /// Klarna's per-transaction limits.
    public static let maximumRefunds = 200
    /// Klarna's per-transaction limits.
    public static let maximumOperations = 500

    /// The transaction's states.
    public enum State: String, Sendable {
        /// Something can still be captured.
        case authorized = "AUTHORIZED"
        /// Captured in full, or the rest voided after a capture.
        case completed = "COMPLETED"
        /// Voided without any capture.
        case closed = "CLOSED"
        /// The authorisation lapsed before any capture.
        case expired = "EXPIRED"
    }

    /// Why an operation is refused.
    public enum Refusal: Error, Sendable, Equatable {
        /// The amount is zero or negative.
        case amountNotPositive
        /// More than remains authorised.
        case exceedsAuthorized(remaining: Int)
        /// More than is captured and unrefunded.
        case exceedsCaptured(refundable: Int)
        /// More than this capture has left to refund.
        case exceedsCapture(refundable: Int)
        /// One of the per-transaction limits.
        case limitReached(String)
        /// The state does not allow it.
        case wrongState(State)
        /// A reauthorisation below what is already captured.
        case belowCaptured(captured: Int)
    }

    /// The authorised amount (after any reauthorisation).
    public private(set) var authorized: Int
    /// Captured so far.
    public private(set) var captured = 0
    /// Refunded so far.
    public private(set) var refunded = 0
    /// Released by void.
    public private(set) var voided = 0
    /// Captures made.
    public private(set) var captureCount = 0
    /// Refunds made.
    public private(set) var refundCount = 0
    /// Every state-changing operation counted towards the 500.
    public private(set) var operationCount = 0
    /// Set when the authorisation lapsed.
    public private(set) var isExpired = false

    /// A new authorisation.
    public init(authorized: Int) { self.authorized = authorized }

    /// Authorised and neither captured nor voided.
    public var remainingAuthorized: Int { authorized - captured - voided }
    /// Captured and not yet refunded.
    public var refundable: Int { captured - refunded }

    /// AUTHORIZED while something can still be captured; COMPLETED once it was captured in full (or the rest
    /// voided after a capture); CLOSED when voided without any capture.
    public var state: State {
        if isExpired && captured == 0 { return .expired }
        if remainingAuthorized > 0 && !isExpired { return .authorized }
        return captured > 0 ? .completed : .closed
    }

    private mutating func countOperation() throws(Refusal) {
        guard operationCount < Self.maximumOperations else { throw .limitReached("a transaction allows at most \(Self.maximumOperations) operations") }
        operationCount += 1
    }

    /// Captures `amount` (nil = all that remains); returns the amount captured.
    public mutating func capture(_ amount: Int?) throws(Refusal) -> Int {
        guard state == .authorized else { throw .wrongState(state) }
        let amount = amount ?? remainingAuthorized
        guard amount > 0 else { throw .amountNotPositive }
        guard amount <= remainingAuthorized else { throw .exceedsAuthorized(remaining: remainingAuthorized) }
        guard captureCount < Self.maximumCaptures else { throw .limitReached("a transaction allows at most \(Self.maximumCaptures) captures") }
        try countOperation()
        captured += amount
        captureCount += 1
        return amount
    }

    /// Refunds `amount` (nil = all refundable) against the transaction; `captureRefundable` narrows it to one capture.
    public mutating func refund(_ amount: Int?, captureRefundable: Int? = nil) throws(Refusal) -> Int {
        let limit = captureRefundable.map { min($0, refundable) } ?? refundable
        let amount = amount ?? limit
        guard amount > 0 else { throw .amountNotPositive }
        if let captureRefundable, amount > captureRefundable { throw .exceedsCapture(refundable: captureRefundable) }
        guard amount <= refundable else { throw .exceedsCaptured(refundable: refundable) }
        guard refundCount < Self.maximumRefunds else { throw .limitReached("a transaction allows at most \(Self.maximumRefunds) refunds") }
        try countOperation()
        refunded += amount
        refundCount += 1
        return amount
    }

    /// Releases what remains authorised; returns the amount released.
    public mutating func void() throws(Refusal) -> Int {
        guard state == .authorized else { throw .wrongState(state) }
        try countOperation()
        let amount = remainingAuthorized
        voided += amount
        return amount
    }

    /// Replaces the authorised amount (extending it, or lowering it no further than what is captured).
    public mutating func reauthorize(_ amount: Int) throws(Refusal) {
        guard state != .closed else { throw .wrongState(state) }
        guard amount > 0 else { throw .amountNotPositive }
        guard amount >= captured else { throw .belowCaptured(captured: captured) }
        try countOperation()
        authorized = amount
        voided = 0
        isExpired = false
    }

    /// Counts a non-amount change (references, metadata) towards the 500.
    public mutating func touch() throws(Refusal) { try countOperation() }

    /// Lets the authorisation lapse (the control endpoint's clock).
    public mutating func expire() { isExpired = true }
}
