import GatewayCore

/// A fault to inject: what kind, which requests it matches, and how often it fires.
///
/// A rule with `count` fires for the next N matching requests and is then spent; one with `rate` fires for that
/// fraction of matching requests, decided by a generator seeded from the configuration so a run repeats exactly;
/// one with neither fires for every match.
public struct FaultRule: Codable, Sendable, Equatable {
    /// The kinds of fault.
    public enum Kind: String, Codable, Sendable {
        /// Answer normally after `delay_ms`.
        case latency
        /// Answer with `status` (default 500) and `error_code` (default `TIMEOUT`) instead of handling the call.
        case error
        /// Write the head and part of the body, then drop the connection.
        case reset
        /// Handle the call, then reset the connection without answering: the request was read and acted on, and
        /// the client cannot know it (a connection lost after sending).
        case drop
        /// A 403 with an empty body, as Klarna's DDoS rules answer.
        case forbiddenNoBody = "forbidden-no-body"
        /// Answer normally, but dribble the body out over `delay_ms`.
        case slowBody = "slow-body"
    }

    /// How an `error` fault with status 429 or 503 states its wait.
    public enum RetryAfterForm: String, Codable, Sendable {
        /// `Retry-After: N`, whole seconds.
        case seconds
        /// `Retry-After: <IMF-fixdate>`, the moment the wait ends.
        case httpDate = "http-date"
    }

    /// The fault.
    public var kind: Kind
    /// Only requests with this method.
    public var method: String?
    /// Only requests whose path starts with this.
    public var pathPrefix: String?
    /// Only requests for this catalogue operation.
    public var operationID: String?
    /// Status for `error` faults.
    public var status: Int?
    /// `error_code` for `error` faults.
    public var errorCode: String?
    /// Milliseconds for `latency` and `slow-body`.
    public var delayMilliseconds: Int?
    /// Fraction of matching requests, 0…1.
    public var rate: Double?
    /// Fire for the next N matching requests only.
    public var count: Int?
    /// For a 429 or 503 `error`: send `Retry-After` in this form, `delay_ms` ahead (instead of a 429's
    /// `X-Ratelimit-Reset`).
    public var retryAfter: RetryAfterForm?

    enum CodingKeys: String, CodingKey {
        case kind, method, status, rate, count
        case pathPrefix = "path_prefix", operationID = "operation_id", errorCode = "error_code", delayMilliseconds = "delay_ms"
        case retryAfter = "retry_after"
    }

    /// Makes a rule.
    public init(
        kind: Kind, method: String? = nil, pathPrefix: String? = nil, operationID: String? = nil, status: Int? = nil,
        errorCode: String? = nil, delayMilliseconds: Int? = nil, rate: Double? = nil, count: Int? = nil,
        retryAfter: RetryAfterForm? = nil
    ) {
        self.retryAfter = retryAfter
        self.kind = kind
        self.method = method
        self.pathPrefix = pathPrefix
        self.operationID = operationID
        self.status = status
        self.errorCode = errorCode
        self.delayMilliseconds = delayMilliseconds
        self.rate = rate
        self.count = count
    }

    /// The `Retry-After` header this rule's answer carries at `nowMilliseconds` (wall clock), if it asks for one.
    func retryAfterHeader(nowMilliseconds: Int64) -> (String, String)? {
        guard let retryAfter else { return nil }
        let delay = Int64(delayMilliseconds ?? 1000)
        switch retryAfter {
        case .seconds:
            return ("Retry-After", String(max(0, delay / 1000)))
        case .httpDate:
            // Rounded up to the next whole second: the date must not end the wait early.
            return ("Retry-After", UTCTime.httpDate(epochSeconds: Int((nowMilliseconds + delay + 999) / 1000)))
        }
    }

    func matches(method: String, path: Substring, operationID: String?) -> Bool {
        if let wanted = self.method, wanted.uppercased() != method { return false }
        if let prefix = pathPrefix, !path.hasPrefix(prefix) { return false }
        if let wanted = self.operationID, wanted != operationID { return false }
        return true
    }
}

/// The active fault rules and the seeded generator that decides rate-based ones: a value type, so the decision
/// logic is tested without a server.
struct FaultInjector: Sendable {
    private(set) var rules: [FaultRule]
    private var generator: SeededGenerator

    init(rules: [FaultRule], seed: UInt64) {
        self.rules = rules
        self.generator = SeededGenerator(seed: seed)
    }

    mutating func add(_ rule: FaultRule) { rules.append(rule) }

    mutating func clear() { rules.removeAll() }

    /// The first rule that fires for this request, consuming a `count` or a random draw as it goes.
    mutating func decide(method: String, path: Substring, operationID: String?) -> FaultRule? {
        guard !rules.isEmpty else { return nil }
        for index in rules.indices where rules[index].matches(method: method, path: path, operationID: operationID) {
            if let rate = rules[index].rate {
                // Draw for every match so the sequence depends only on the order of requests.
                if generator.unit() >= rate { continue }
            }
            let rule = rules[index]
            if let count = rule.count {
                if count <= 1 { rules.remove(at: index) } else { rules[index].count = count - 1 }
            }
            return rule
        }
        return nil
    }
}
