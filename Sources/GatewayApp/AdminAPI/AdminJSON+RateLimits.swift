import GatewayCore

/// The rate-limit state of a merchant or caller as JSON: figures and times, no key material of any kind.
extension AdminJSON {
    /// `clustered`, `ledger` (in cluster mode: `read` when the rooms are the shared ledger's, `unavailable` when it
    /// could not be read and `remaining` is unknown) and `rules`, one entry per key with a limit or a hold; times in
    /// whole milliseconds, rounded up so that a wait still running never reads as 0.
    static func rateLimitRooms(_ rooms: [RateLimitRoom], clustered: Bool, ledger: String?) -> [(String, JSONValue)] {
        [
            ("clustered", .bool(clustered)),
            ("ledger", ledger.map(JSONValue.string) ?? .null),
            ("rules", .array(rooms.map { room in
                .object([
                    ("rule", .string(room.rule.rawValue)),
                    ("category", room.category.isEmpty ? .null : .string(room.category)),
                    ("rate", room.limit.map { .double($0.rate) } ?? .null),
                    ("burst", room.limit.map { .int($0.burst) } ?? .null),
                    ("remaining", room.remaining.map(JSONValue.int) ?? .null),
                    ("reset_after_ms", milliseconds(room.resetAfter)),
                    ("held_for_ms", milliseconds(room.heldFor)),
                ])
            })),
        ]
    }

    /// A throttled key: who (by the rule's parts), the limit, the room now and since when it was throttled.
    static func throttle(_ throttle: RateLimitThrottle) -> JSONValue {
        let key = throttle.key
        func part(_ value: String, for rules: Set<RateLimitRule>) -> JSONValue { rules.contains(key.rule) ? .string(value) : .null }
        return .object([
            ("rule", .string(key.rule.rawValue)),
            ("merchant_id", key.rule == .callerMerchant ? .string(key.second) : part(key.first, for: [.merchant])),
            ("partner_id", part(key.first, for: [.partner])),
            ("caller_id", part(key.first, for: [.caller, .callerMerchant])),
            ("category", part(key.second, for: [.merchant, .partner])),
            ("rate", throttle.limit.map { .double($0.rate) } ?? .null),
            ("burst", throttle.limit.map { .int($0.burst) } ?? .null),
            ("remaining", throttle.remaining.map(JSONValue.int) ?? .null),
            ("throttled_now", .bool(throttle.throttledNow)),
            ("retry_after_ms", milliseconds(throttle.retryAfter)),
            ("held_for_ms", milliseconds(throttle.heldFor)),
            ("reset_after_ms", milliseconds(throttle.resetAfter)),
            ("refused", .int(throttle.refused)),
            ("delayed", .int(throttle.delayed)),
            ("last_throttled_ms_ago", throttle.sinceLast.map { .int(Int($0 / 1_000_000)) } ?? .null),
        ])
    }

    /// A throttled key's place in the list's order, and the `next_cursor` that resumes after it.
    static func throttleCursor(_ key: RateLimitKey) -> String { "\(key.rule.rawValue):\(key.first):\(key.second)" }

    /// Nanoseconds as whole milliseconds, rounded up so that a wait still running never reads as 0.
    private static func milliseconds(_ nanoseconds: Int64) -> JSONValue { .int(Int((nanoseconds + 999_999) / 1_000_000)) }
}
