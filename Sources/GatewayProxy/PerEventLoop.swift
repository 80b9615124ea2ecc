import NIOCore

/// One value per event loop of a group, made once when the runtime is built and never changed, found by the loop a
/// channel runs on; each value is meant to be used only on its own loop, so none needs a lock.
struct PerEventLoop<Value> {
    private let values: [ObjectIdentifier: (loop: any EventLoop, value: Value)]

    /// `make(loop)` for every loop of `group`.
    init(_ group: any EventLoopGroup, _ make: (any EventLoop) -> Value) {
        var values: [ObjectIdentifier: (loop: any EventLoop, value: Value)] = [:]
        for loop in group.makeIterator() { values[ObjectIdentifier(loop)] = (loop, make(loop)) }
        self.values = values
    }

    /// `loop`'s value; nil for a loop outside the group.
    subscript(loop: any EventLoop) -> Value? { values[ObjectIdentifier(loop)]?.value }

    /// Runs `body` on each loop with that loop's value, and collects the results on `eventLoop`.
    func gather<T: Sendable>(on eventLoop: any EventLoop, _ body: @escaping @Sendable (Value) -> T) -> EventLoopFuture<[T]> {
        let futures = values.values.map { entry in
            let owned = LoopOwned(value: entry.value)
            return entry.loop.submit { body(owned.value) }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: eventLoop)
    }

    /// Runs `body` on each loop with that loop's value, and returns once every loop has. Work handed to a loop
    /// that has stopped is dropped without an error, so this must not be called once the loops may be gone.
    func each(_ body: @escaping @Sendable (Value) -> Void) async {
        for entry in values.values {
            let owned = LoopOwned(value: entry.value)
            try? await entry.loop.submit { body(owned.value) }.get()
        }
    }

    /// Runs `body` on each loop with that loop's value, without waiting for it.
    func forEach(_ body: @escaping @Sendable (Value) -> Void) {
        for entry in values.values {
            let owned = LoopOwned(value: entry.value)
            entry.loop.execute { body(owned.value) }
        }
    }
}

extension PerEventLoop: Sendable where Value: Sendable {}

/// A loop's value on its way to that loop: it is used there only, so handing it over is safe even when the value
/// itself is not `Sendable`.
private struct LoopOwned<Value>: @unchecked Sendable {
    let value: Value
}
