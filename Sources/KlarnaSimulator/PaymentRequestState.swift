import Foundation

/// The life of a payment request as Klarna documents it.
///
/// `SUBMITTED → IN_PROGRESS → COMPLETED | DECLINED`, with `CANCELED` (the partner) and `EXPIRED` (the clock)
/// reachable from either open state; the four end states are final. A value type so the rules are tested alone.
public enum PaymentRequestState: String, Sendable, CaseIterable {
    /// Created; the customer has not started.
    case submitted = "SUBMITTED"
    /// The customer is interacting with Klarna.
    case inProgress = "IN_PROGRESS"
    /// The customer approved; a payment token is issued.
    case completed = "COMPLETED"
    /// The partner canceled it.
    case canceled = "CANCELED"
    /// Its time ran out.
    case expired = "EXPIRED"
    /// Klarna or the customer declined.
    case declined = "DECLINED"

    /// True once nothing can change the request any more.
    public var isFinal: Bool { self != .submitted && self != .inProgress }

    /// The webhook event type announcing entry into this state.
    public var eventType: String { "payment.request.state-change.\(rawValue.lowercased().replacingOccurrences(of: "_", with: "-"))" }

    /// Whether the request may move from this state to `next`.
    public func canMove(to next: PaymentRequestState) -> Bool {
        switch (self, next) {
        case (.submitted, .inProgress), (.submitted, .canceled), (.submitted, .expired): true
        case (.inProgress, .completed), (.inProgress, .declined), (.inProgress, .canceled), (.inProgress, .expired): true
        default: false
        }
    }

    /// The states passed through (excluding this one) to reach `target` the short way, as the customer's side would:
    /// `SUBMITTED` to `COMPLETED` goes via `IN_PROGRESS`. Nil when `target` cannot be reached.
    public func path(to target: PaymentRequestState) -> [PaymentRequestState]? {
        if canMove(to: target) { return [target] }
        if self == .submitted, PaymentRequestState.inProgress.canMove(to: target) { return [.inProgress, target] }
        return nil
    }
}
