import GatewayCore
import NIOConcurrencyHelpers
import Synchronization

/// The current `GatewaySnapshot`, swapped whole on reload.
///
/// Readers copy one reference; they never see a half-built configuration. An event loop reads it through its
/// `Memo`: the snapshot it read last, kept while the generation (an atomic only a reload writes) says nothing was
/// installed since, so a call takes no lock that every loop shares. Others take a short lock.
public final class SnapshotHolder: Sendable {
    private let box: NIOLockedValueBox<(snapshot: GatewaySnapshot, generation: Int)>
    /// The generation of the snapshot in force: written under the lock after the snapshot, read without it.
    private let generation = Atomic<Int>(0)

    /// The snapshot one event loop read last, with its generation; used on that loop only.
    final class Memo {
        fileprivate var snapshot: GatewaySnapshot?
        fileprivate var generation = -1

        /// Lets the snapshot go (a reload replaced it), so that a loop taking no call does not keep it alive.
        func forget() {
            snapshot = nil
            generation = -1
        }
    }

    /// Starts with `snapshot`.
    public init(_ snapshot: GatewaySnapshot) { box = NIOLockedValueBox((snapshot, 0)) }

    /// The snapshot in force.
    public var current: GatewaySnapshot { box.withLockedValue { $0.snapshot } }

    /// The snapshot in force, from `memo` when no other was installed since the loop last read it.
    func current(memo: Memo) -> GatewaySnapshot {
        if let snapshot = memo.snapshot, memo.generation == generation.load(ordering: .acquiring) { return snapshot }
        let (snapshot, generation) = box.withLockedValue { $0 }
        memo.snapshot = snapshot
        memo.generation = generation
        return snapshot
    }

    /// Installs a new snapshot; `ProxyRuntime.install` also has the loops let go of the one replaced.
    func replace(with snapshot: GatewaySnapshot) {
        box.withLockedValue { state in
            state = (snapshot, state.generation + 1)
            generation.store(state.generation, ordering: .releasing)
        }
    }
}
