import NIOPosix

/// New trace ids, drawn from a generator of the calling thread's own (wyrand, seeded from the system's random
/// source once per thread): the system generator costs a `getrandom` system call per 8 bytes, two per new trace,
/// which was most of a traced call's start. Trace ids must be unique and unpredictable enough to sample on,
/// not secret (they are sent to Klarna and written in log lines); OpenTelemetry's SDKs draw them the same way.
struct ThreadRandom: RandomNumberGenerator {
    private let state: State

    /// The calling thread's generator.
    init() {
        if let existing = Self.states.currentValue {
            state = existing
        } else {
            state = State()
            Self.states.currentValue = state
        }
    }

    mutating func next() -> UInt64 { state.next() }

    private static let states = ThreadSpecificVariable<State>()

    /// One thread's generator state.
    private final class State: @unchecked Sendable {  // @unchecked: one thread's, by construction
        private var value: UInt64

        init() {
            var system = SystemRandomNumberGenerator()
            value = system.next()
        }

        func next() -> UInt64 {
            value &+= 0xA076_1D64_78BD_642F
            let product = value.multipliedFullWidth(by: value ^ 0xE703_7ED1_A0B4_28DB)
            return product.high ^ product.low
        }
    }
}
