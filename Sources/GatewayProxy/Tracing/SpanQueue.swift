import NIOConcurrencyHelpers
import NIOPosix
import Synchronization

/// Finished spans waiting for export, already encoded as OTLP protobuf `Span` messages. Each thread that ends spans
/// (an event loop) writes into a `TraceBuffer` of its own, so no lock is shared by the loops per span; the exporter
/// takes every buffer's bytes at once, every `export_interval_ms` or when `batch_size` spans are waiting. The queue
/// is bounded: past `capacity` spans a span is dropped and counted, so a collector that is slow or gone never
/// holds a call or grows the process.
public final class SpanQueue: Sendable {
    /// Spans held at most (`tracing.queue_size`).
    public let capacity: Int
    /// Spans per export request (`tracing.batch_size`); this many waiting wakes the exporter.
    public let batchSize: Int
    private let queued = Atomic<Int>(0)
    private let droppedFull = Atomic<Int>(0)
    private let buffers = NIOLockedValueBox<[TraceBuffer]>([])
    private let ready: @Sendable () -> Void
    private let id: UInt64

    /// What `take()` gives the exporter: the spans' bytes, each a `ScopeSpans.spans` field (key, length, `Span`).
    public struct Taken: Sendable {
        /// One run of spans per buffer that held spans.
        public var runs: [OTLPExportRequest.SpanRun] = []
        /// Spans in `runs`.
        public var count = 0
    }

    /// Makes a queue; `ready` is called (from an event loop, rarely) when `batchSize` spans wait or a span was
    /// dropped since the last `takeDropped()`.
    public init(capacity: Int, batchSize: Int, ready: @escaping @Sendable () -> Void) {
        self.capacity = max(1, capacity)
        self.batchSize = max(1, batchSize)
        self.ready = ready
        id = Self.ids.withLockedValue { last in
            last += 1
            return last
        }
    }

    /// The calling thread's buffer for this queue, made on first use.
    func local() -> TraceBuffer {
        let mine: ThreadBuffers
        if let existing = Self.threadBuffers.currentValue {
            mine = existing
            for (queue, buffer) in mine.buffers where queue == id { return buffer }
        } else {
            mine = ThreadBuffers()
            Self.threadBuffers.currentValue = mine
        }
        let buffer = TraceBuffer(queue: self)
        mine.buffers.append((id, buffer))
        buffers.withLockedValue { $0.append(buffer) }
        return buffer
    }

    /// Claims room for one span; false (the span dropped and counted) when the queue is full.
    func admit() -> Bool {
        let before = queued.wrappingAdd(1, ordering: .relaxed).oldValue
        if before >= capacity {
            queued.wrappingSubtract(1, ordering: .relaxed)
            if droppedFull.wrappingAdd(1, ordering: .relaxed).oldValue == 0 { ready() }
            return false
        }
        if before + 1 == batchSize { ready() }
        return true
    }

    /// Takes every span waiting, from every thread's buffer.
    public func take() -> Taken {
        var taken = Taken()
        for buffer in buffers.withLockedValue({ $0 }) {
            let (bytes, count) = buffer.take()
            guard count > 0 else { continue }
            taken.runs.append(OTLPExportRequest.SpanRun(bytes: bytes[...], count: count))
            taken.count += count
        }
        queued.wrappingSubtract(taken.count, ordering: .relaxed)
        return taken
    }

    /// Spans dropped because the queue was full since the last call.
    public func takeDropped() -> Int { droppedFull.exchange(0, ordering: .relaxed) }

    /// Spans waiting now.
    public var waiting: Int { queued.load(ordering: .relaxed) }

    private static let ids = NIOLockedValueBox<UInt64>(0)
    private static let threadBuffers = ThreadSpecificVariable<ThreadBuffers>()

    /// One thread's buffers, one per queue (a process has one queue; tests have several).
    private final class ThreadBuffers: @unchecked Sendable {  // @unchecked: one thread's, by construction
        var buffers: [(queue: UInt64, buffer: TraceBuffer)] = []
    }
}

/// One thread's encoded spans. Its lock is taken by its own thread per span and by the exporter once per export,
/// so it is uncontended; it also guards the span id generator, so a call whose spans end on another thread (it
/// does not happen on the event loops, but nothing relies on it) stays correct.
final class TraceBuffer: @unchecked Sendable {
    // @unchecked: every mutable field is behind `lock`.
    // Strong: a call may still hold its buffer when a stopped gateway's queue is otherwise gone.
    private let queue: SpanQueue
    private let lock = NIOLock()
    private var bytes: [UInt8] = []
    private var count = 0
    /// wyrand state: span ids need to be unique, not secret, and a system random draw per span costs a syscall.
    private var state: UInt64

    init(queue: SpanQueue) {
        self.queue = queue
        var random = SystemRandomNumberGenerator()
        state = random.next()
    }

    /// A new non-zero span id.
    func nextID() -> UInt64 { lock.withLock { unlockedNextID() } }

    private func unlockedNextID() -> UInt64 {
        while true {
            state &+= 0xA076_1D64_78BD_642F
            let product = state.multipliedFullWidth(by: state ^ 0xE703_7ED1_A0B4_28DB)
            let id = product.high ^ product.low
            if id != 0 { return id }
        }
    }

    /// Appends one span: `write` gets the bytes and a new span id (for a span without one yet) and writes the
    /// `Span` message's fields. Nothing is written when the queue is full.
    func append(_ write: (inout [UInt8], UInt64) -> Void) {
        append(()) { bytes, id, _ in write(&bytes, id) }
    }

    /// `append(_:)` with `context` handed to `write` borrowed: a value the closure captured instead (a call's
    /// record) was copied into it, every string and box in it retained and released.
    func append<Context>(_ context: borrowing Context, _ write: (inout [UInt8], UInt64, borrowing Context) -> Void) {
        guard queue.admit() else { return }
        // No closure around `write`: one capturing `context` would copy it.
        lock.lock()
        defer { lock.unlock() }
        let id = unlockedNextID()
        let start = bytes.protoMessageStart(2)
        write(&bytes, id, context)
        bytes.protoMessageEnd(start)
        count += 1
    }

    /// Hands over what the buffer holds, leaving it empty with room for as much.
    func take() -> ([UInt8], Int) {
        lock.withLock {
            guard count > 0 else { return ([], 0) }
            var next: [UInt8] = []
            next.reserveCapacity(bytes.count)
            swap(&next, &bytes)
            defer { count = 0 }
            return (next, count)
        }
    }
}
