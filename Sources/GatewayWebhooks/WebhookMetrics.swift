import CoreMetrics
import GatewayCore
import NIOConcurrencyHelpers

/// The webhook path's metrics, made through the gateway's one factory so `/metrics` exports them with the rest.
/// Labels are reasons and destination names, both few and chosen by the operator; never an event id or merchant.
public final class WebhookMetrics: Sendable {
    private let factory: any MetricsFactory
    private let received: Counter
    private let duplicates: Counter
    private let rejected: [WebhookRefusal: Counter]
    private let perDestination = NIOLockedValueBox<[String: DestinationSeries]>([:])

    private final class DestinationSeries: Sendable {
        let delivered: Counter
        let retried: Counter
        let dead: Counter
        let oldestPending: Gauge

        init(_ destination: String, factory: any MetricsFactory) {
            func deliveries(_ outcome: String) -> Counter {
                Counter(label: "kgw_webhook_deliveries_total", dimensions: [("destination", destination), ("outcome", outcome)], factory: factory)
            }
            delivered = deliveries("delivered")
            retried = deliveries("retry")
            dead = deliveries("dead")
            oldestPending = Gauge(label: "kgw_webhook_oldest_pending_seconds", dimensions: [("destination", destination)], factory: factory)
        }
    }

    /// Metrics that go nowhere.
    public static let disabled = WebhookMetrics(factory: NOOPMetricsHandler.instance)

    /// Makes the metrics over `factory`.
    public init(factory: any MetricsFactory) {
        self.factory = factory
        received = Counter(label: "kgw_webhooks_received_total", factory: factory)
        duplicates = Counter(label: "kgw_webhooks_duplicates_total", factory: factory)
        var rejected: [WebhookRefusal: Counter] = [:]
        for reason in WebhookRefusal.allCases {
            rejected[reason] = Counter(label: "kgw_webhooks_rejected_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.rejected = rejected
    }

    /// A new event was stored.
    func countReceived() { received.increment() }
    /// A repeat of a stored event was acknowledged and dropped.
    func countDuplicate() { duplicates.increment() }
    /// A delivery to the listener was refused.
    func countRejected(_ reason: WebhookRefusal) { rejected[reason]?.increment() }

    private func series(_ destination: String) -> DestinationSeries {
        perDestination.withLockedValue { series in
            if let existing = series[destination] { return existing }
            let made = DestinationSeries(destination, factory: factory)
            series[destination] = made
            return made
        }
    }

    /// A delivery attempt ended as `state` (pending again counts as a retry).
    func countAttempt(destination: String, state: WebhookDeliveryState) {
        let series = series(destination)
        switch state {
        case .delivered: series.delivered.increment()
        case .pending: series.retried.increment()
        case .dead: series.dead.increment()
        }
    }

    /// Sets every destination's oldest pending age (0 for destinations with nothing pending).
    func setOldestPending(_ oldest: [String: Int64], destinations: [String], nowMicros: Int64) {
        for destination in Set(destinations).union(oldest.keys) {
            let age = oldest[destination].map { max(0, Double(nowMicros - $0) / 1e6) } ?? 0
            series(destination).oldestPending.record(age)
        }
    }
}
