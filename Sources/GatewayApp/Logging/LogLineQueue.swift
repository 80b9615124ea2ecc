#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The log writer's queue: one mutex for the lines and a condition variable for the writer's thread.
///
/// The writer sleeps until a first line arrives, then lets more gather for a short while before taking them all,
/// so that a busy gateway wakes it once per batch rather than once per line; a line marked urgent ends the wait.
/// A caller signals only for the first line of a batch or its first urgent line: the other lines cost an append
/// under the mutex and nothing else.
final class LogLineQueue: @unchecked Sendable {
    // @unchecked: every stored property is read and written with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var lines: [LogLine] = []
    private var urgent = false
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if canImport(Glibc)
        // The linger is measured on the monotonic clock: a wall-clock step must not stretch it.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Appends `line` unless `capacity` lines are waiting; false when it was dropped.
    func append(_ line: LogLine, urgent isUrgent: Bool) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard lines.count < capacity else { return false }
        lines.append(line)
        let wakes = lines.count == 1 || (isUrgent && !urgent)
        if isUrgent { urgent = true }
        if wakes { pthread_cond_signal(condition) }
        return true
    }

    /// Waits for a line, then up to `linger` more unless a line is urgent; the lines stay queued for `take`.
    func waitForBatch(linger: Duration) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while lines.isEmpty { pthread_cond_wait(condition, mutex) }
        if !urgent, linger > .zero {
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let (seconds, attoseconds) = linger.components
            let nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
            deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
            deadline.tv_nsec = nanoseconds % 1_000_000_000
            while !urgent, pthread_cond_timedwait(condition, mutex, &deadline) != ETIMEDOUT {}
        }
    }

    /// Moves every queued line into `batch`, without waiting.
    func take(into batch: inout [LogLine]) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        swap(&lines, &batch)
        urgent = false
    }
}
