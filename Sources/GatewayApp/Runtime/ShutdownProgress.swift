import Logging
import Synchronization

/// What a stopping gateway waits on, said in the log while a step lasts longer than `patience`: a node that does
/// not exit after SIGTERM then names the step (calls in flight, the reload loop, the quota ledger, the audit
/// writer…) instead of going silent, which is what an SRE needs to decide between waiting and `kill -9`.
public final class ShutdownProgress: Sendable {
    private struct State {
        var step: String?
        var since = ContinuousClock.now
        var watchdog: Task<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())
    private let logger: Logger
    private let patience: Duration

    /// Makes the progress of one stop; nothing is logged until the first `enter`.
    public init(logger: Logger, patience: Duration = .seconds(10)) {
        self.logger = logger
        self.patience = patience
    }

    /// The stop now waits on `step`; from here on a warning names it every `patience` until the next step.
    public func enter(_ step: String) {
        let start: Bool = state.withLock { state in
            guard !state.finished else { return false }
            state.step = step
            state.since = .now
            return state.watchdog == nil
        }
        guard start else { return }
        let watchdog = Task { [weak self] in
            while let patience = self?.patience, (try? await Task.sleep(for: patience)) != nil {
                self?.reportIfLate()
            }
        }
        state.withLock { $0.watchdog = watchdog }
    }

    /// The stop is over: nothing more is said.
    public func finish() {
        let watchdog = state.withLock { state in
            state.finished = true
            state.step = nil
            return state.watchdog.take()
        }
        watchdog?.cancel()
    }

    private func reportIfLate() {
        let late: (String, Duration)? = state.withLock { state in
            guard let step = state.step else { return nil }
            let waited = ContinuousClock.now - state.since
            return waited >= patience ? (step, waited) : nil
        }
        guard let (step, waited) = late else { return }
        logger.warning("stop still waiting", metadata: ["step": "\(step)", "waited_s": "\(waited.components.seconds)"])
    }

    deinit {
        state.withLock { $0.watchdog }?.cancel()
    }
}
