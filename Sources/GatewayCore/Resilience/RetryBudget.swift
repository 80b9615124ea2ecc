/// A token bucket that keeps retries to a share of the load: every call puts `ratio` of a token in, every retry
/// takes a whole one out, and the bucket holds at most `capacity`.
///
/// Over any stretch, retries ≤ `ratio` × calls + `capacity`; with the default 0.1 retries add at most 10% load once
/// the initial allowance is spent. An empty bucket means "fail fast": the failure goes to the caller as it is.
public struct RetryBudget: Sendable, Equatable {
    /// Budget settings.
    public struct Settings: Sendable, Equatable {
        /// Tokens each call deposits (the share of load retries may add).
        public var ratio: Double
        /// Most tokens held; also the start, so a quiet gateway can still retry a few calls.
        public var capacity: Double

        /// 10% extra load, at most 10 retries in a burst.
        public init(ratio: Double = 0.1, capacity: Double = 10) {
            self.ratio = max(0, ratio)
            self.capacity = max(1, capacity)
        }
    }

    /// The settings in force.
    public let settings: Settings
    /// Tokens in the bucket.
    public private(set) var tokens: Double

    /// A full bucket.
    public init(settings: Settings = .init()) {
        self.settings = settings
        tokens = settings.capacity
    }

    /// A call's first attempt.
    public mutating func deposit() { tokens = min(settings.capacity, tokens + settings.ratio) }

    /// Takes a token for a retry; false when none is left.
    public mutating func withdraw() -> Bool {
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
