import GatewayCore
import NIOConcurrencyHelpers

/// The current `GatewaySnapshot`, swapped whole on reload.
///
/// Readers take a short uncontended lock to copy one reference; they never see a half-built configuration.
public final class SnapshotHolder: Sendable {
    private let box: NIOLockedValueBox<GatewaySnapshot>

    /// Starts with `snapshot`.
    public init(_ snapshot: GatewaySnapshot) { box = NIOLockedValueBox(snapshot) }

    /// The snapshot in force.
    public var current: GatewaySnapshot { box.withLockedValue { $0 } }

    /// Installs a new snapshot.
    public func replace(with snapshot: GatewaySnapshot) { box.withLockedValue { $0 = snapshot } }
}
