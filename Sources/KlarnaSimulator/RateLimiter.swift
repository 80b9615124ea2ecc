/// Fixed one-second windows per (subject, bucket): cheap, exact enough for a simulator, and it yields the three
/// `X-Ratelimit-*` headers Klarna sends.
struct RateLimiter: Sendable {
    /// The figures, looked up by operation id, then category, then `default`.
    let perAccount: [String: Int]
    let perAcquirer: [String: Int]

    private struct Window {
        var second: Int64
        var used: Int
    }

    private var windows: [String: Window] = [:]

    init(perAccount: [String: Int], perAcquirer: [String: Int]) {
        self.perAccount = perAccount
        self.perAcquirer = perAcquirer
    }

    /// The limit and the bucket name (operation id when it has its own figure, else the category).
    static func limit(in table: [String: Int], operationID: String, category: String) -> (limit: Int, bucket: String) {
        if let limit = table[operationID] { return (limit, operationID) }
        if let limit = table[category] { return (limit, category) }
        return (table["default"] ?? 0, category)
    }

    /// A refusal's headers, or nil when the call may go ahead; the call is counted only when allowed at both levels.
    mutating func admit(account: String?, acquirer: String, operationID: String, category: String, nowMilliseconds: Int64) -> [(String, String)]? {
        let second = nowMilliseconds / 1000
        let reset = "1"
        var checks: [(key: String, limit: Int, bucket: String)] = []
        if let account {
            let (limit, bucket) = Self.limit(in: perAccount, operationID: operationID, category: category)
            if limit > 0 { checks.append(("a|\(account)|\(bucket)", limit, bucket)) }
        }
        let (limit, bucket) = Self.limit(in: perAcquirer, operationID: operationID, category: category)
        if limit > 0 { checks.append(("q|\(acquirer)|\(bucket)", limit, bucket)) }
        guard !checks.isEmpty else { return nil }
        for check in checks {
            let window = windows[check.key]
            if let window, window.second == second, window.used >= check.limit {
                return [
                    ("X-Ratelimit-Limit", "\(check.limit), \(check.limit);w=1;name=\"\(check.bucket)\""),
                    ("X-Ratelimit-Remaining", "0"), ("X-Ratelimit-Reset", reset),
                ]
            }
        }
        for check in checks {
            if var window = windows[check.key], window.second == second {
                window.used += 1
                windows[check.key] = window
            } else {
                windows[check.key] = Window(second: second, used: 1)
            }
        }
        return nil
    }
}
