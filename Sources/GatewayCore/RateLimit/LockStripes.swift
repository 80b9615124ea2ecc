import Synchronization

/// `count` values, each behind a lock of its own at least a cache line from the next, locked one at a time or several
/// nested in ascending order: the storage of `TATStripes` and `LaneCredits`.
final class LockStripes<let count: Int, Value: Sendable>: Sendable {
    /// One value and its lock, padded by a cache line: two locks in one line would move between the cores as one
    /// lock does.
    struct Stripe: ~Copyable, Sendable {
        let value: Mutex<Value>
        private let padding = InlineArray<8, UInt64>(repeating: 0)

        init(_ value: Value) { self.value = Mutex(value) }
    }

    private let stripes: InlineArray<count, Stripe>

    /// Stripes that each start as `initial`.
    init(_ initial: Value) {
        stripes = InlineArray { _ in Stripe(initial) }
    }

    /// Runs `body` on stripe `index`'s value under its lock.
    func withLock<Result: Sendable>(_ index: Int, _ body: (inout Value) -> Result) -> Result {
        stripes[index].value.withLock { body(&$0) }
    }

    /// Runs `body` with the stripes `order` (ascending, distinct) locked one inside the other, so that two callers
    /// never wait on each other in a cycle; `body` gets each one's value, in `order`'s order.
    func withLocked<Result: Sendable>(_ order: UnsafeBufferPointer<Int>, _ body: (UnsafeBufferPointer<UnsafeMutablePointer<Value>>) -> Result) -> Result {
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Value>.self, capacity: order.count) { pointers in
            lock(order, from: 0, into: pointers) { body(UnsafeBufferPointer(pointers)) }
        }
    }

    /// Runs `body` with every stripe locked, in ascending order.
    func withAllLocked<Result: Sendable>(_ body: (UnsafeBufferPointer<UnsafeMutablePointer<Value>>) -> Result) -> Result {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { order in
            for index in 0..<count { order.initializeElement(at: index, to: index) }
            return withLocked(UnsafeBufferPointer(order), body)
        }
    }

    /// The sum of `read` over the stripes, each read under its own lock (not one instant for all).
    func sum(_ read: (borrowing Value) -> Int) -> Int {
        (0..<count).reduce(0) { total, index in total + stripes[index].value.withLock { read($0) } }
    }

    private func lock<Result: Sendable>(
        _ order: UnsafeBufferPointer<Int>, from step: Int, into pointers: UnsafeMutableBufferPointer<UnsafeMutablePointer<Value>>,
        _ body: () -> Result
    ) -> Result {
        if step == order.count { return body() }
        return stripes[order[step]].value.withLock { value in
            // The pointer is used only inside this scope, while the lock is held.
            withUnsafeMutablePointer(to: &value) { pointer in
                pointers.initializeElement(at: step, to: pointer)
                return lock(order, from: step + 1, into: pointers, body)
            }
        }
    }
}
