import GatewayCore

/// The rate-limit state of a merchant or caller as JSON: figures and times, no key material of any kind.
extension AdminJSON {
    /// `clustered` and `rules`, one entry per key with a limit or a hold; times in whole milliseconds, rounded up
    /// so that a wait still running never reads as 0.
    static func rateLimitRooms(_ rooms: [RateLimitRoom], clustered: Bool) -> [(String, JSONValue)] {
        func milliseconds(_ nanoseconds: Int64) -> JSONValue { .int(Int((nanoseconds + 999_999) / 1_000_000)) }
        return [
            ("clustered", .bool(clustered)),
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
}
