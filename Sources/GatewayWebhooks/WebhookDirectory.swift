import GatewayCore
import NIOConcurrencyHelpers

/// A destination ready to be delivered to: its record with its secrets opened.
public struct WebhookDestination: Sendable {
    /// The stored record.
    public var record: WebhookDestinationRecord
    /// The Standard Webhooks secret, if any (without one, deliveries carry no `webhook-signature`).
    public var secret: Secret?
    /// The client identity presented over mTLS, if any.
    public var clientKeyPEM: Secret?

    /// Makes a destination.
    public init(record: WebhookDestinationRecord, secret: Secret?, clientKeyPEM: Secret?) {
        self.record = record
        self.secret = secret
        self.clientKeyPEM = clientKeyPEM
    }
}

/// Everything the webhook path reads that changes on reload: signing keys, routes and destinations, swapped whole
/// like the proxy's snapshot, so a delivery never sees half of a change.
public struct WebhookDirectory: Sendable {
    /// Signing keys by partner and key id.
    public var keys: WebhookSigningKeys
    /// Routes from `policies/webhooks.yaml`.
    public var routes: WebhookRouteTable
    /// Destinations by name.
    public var destinations: [String: WebhookDestination]

    /// Nothing: every delivery is refused, nothing is routed.
    public static let empty = WebhookDirectory(keys: .none, routes: .empty, destinations: [:])

    /// Makes a directory.
    public init(keys: WebhookSigningKeys, routes: WebhookRouteTable, destinations: [String: WebhookDestination]) {
        self.keys = keys
        self.routes = routes
        self.destinations = destinations
    }
}

/// The directory in force.
public final class WebhookDirectoryHolder: Sendable {
    private let box: NIOLockedValueBox<WebhookDirectory>

    /// Starts with `directory`.
    public init(_ directory: WebhookDirectory) { box = NIOLockedValueBox(directory) }

    /// The directory in force.
    public var current: WebhookDirectory { box.withLockedValue { $0 } }

    /// Installs a new directory.
    public func replace(with directory: WebhookDirectory) { box.withLockedValue { $0 = directory } }
}
