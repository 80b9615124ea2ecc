import NIOCore

/// One value per event loop of a group, made once when the runtime is built and never changed, found by the loop a
/// channel runs on; each value is meant to be used only on its own loop, so none needs a lock.
struct PerEventLoop<Value> {
    private let values: [ObjectIdentifier: Value]

    /// `make(loop)` for every loop of `group`.
    init(_ group: any EventLoopGroup, _ make: (any EventLoop) -> Value) {
        var values: [ObjectIdentifier: Value] = [:]
        for loop in group.makeIterator() { values[ObjectIdentifier(loop)] = make(loop) }
        self.values = values
    }

    /// `loop`'s value; nil for a loop outside the group.
    subscript(loop: any EventLoop) -> Value? { values[ObjectIdentifier(loop)] }

    /// Every loop's value, in no particular order.
    var all: Dictionary<ObjectIdentifier, Value>.Values { values.values }
}

extension PerEventLoop: Sendable where Value: Sendable {}
