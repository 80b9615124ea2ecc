import Foundation
import GatewayAudit
import GatewayCore

/// Calls of a time window counted from their audit records: rate, statuses, error codes, upstream latency, per
/// upstream host and per minute. Admin requests (`operation_family` `admin`, or a path under `/admin/`) are not
/// calls and are left out.
struct TrafficSummary {
    /// One call: its outcome or refusal record (an intent is followed by one of them, so it is not counted).
    private struct Call {
        var minute: Int64
        var status: Int64?
        var errorCode: String?
        var latencyMicros: Int64?
        var host: String
    }

    private let calls: [Call]
    private let fromMicros: Int64
    private let toMicros: Int64
    private let truncated: Bool

    /// Sums `entries`; `hosts` gives each partner's upstream host.
    init(entries: [AuditEntry], hosts: [String: String], fromMicros: Int64, toMicros: Int64, truncated: Bool) {
        calls = entries.compactMap { entry in
            // An admin refusal made before its route was known (a wrong token) has no operation family, only its path.
            guard entry.phase != "intent", entry.operationFamily != "admin", !entry.path.hasPrefix("/admin/") else { return nil }
            let code = entry.gatewayErrorCode ?? entry.klarnaErrorCode ?? ((entry.status ?? 0) >= 400 ? "HTTP_\(entry.status ?? 0)" : nil)
            return Call(
                minute: entry.timeMicros / 60_000_000, status: entry.status, errorCode: code, latencyMicros: entry.upstreamLatencyMicros,
                host: entry.partnerID.flatMap { hosts[$0] } ?? "none")
        }
        self.fromMicros = fromMicros
        self.toMicros = toMicros
        self.truncated = truncated
    }

    /// The `Traffic` schema of the OpenAPI document.
    var json: JSONValue {
        let seconds = Double(toMicros - fromMicros) / 1_000_000
        let rate = seconds > 0 ? (Double(calls.count) / seconds * 100).rounded() / 100 : 0
        return .object([
            ("from", .string(Self.time(fromMicros))),
            ("to", .string(Self.time(toMicros))),
            ("calls", .int(calls.count)),
            ("requests_per_second", .double(rate)),
            ("errors", .int(calls.count(where: { $0.errorCode != nil }))),
            ("truncated", .bool(truncated)),
            ("upstream_latency_ms", Self.percentiles(calls.compactMap(\.latencyMicros))),
            ("by_status", Self.counted(calls.map { $0.status.map(String.init) ?? "none" }, key: "status")),
            ("errors_by_code", Self.counted(calls.compactMap(\.errorCode), key: "code")),
            ("hosts", .array(Dictionary(grouping: calls, by: \.host).sorted { $0.key < $1.key }.map { host, calls in
                .object([
                    ("host", .string(host)), ("calls", .int(calls.count)), ("errors", .int(calls.count(where: { $0.errorCode != nil }))),
                    ("upstream_latency_ms", Self.percentiles(calls.compactMap(\.latencyMicros))),
                ])
            })),
            ("per_minute", .array(Dictionary(grouping: calls, by: \.minute).sorted { $0.key < $1.key }.map { minute, calls in
                .object([
                    ("minute", .string(Self.time(minute * 60_000_000))), ("calls", .int(calls.count)),
                    ("errors", .int(calls.count(where: { $0.errorCode != nil }))),
                ])
            })),
        ])
    }

    /// `{"p50": …, "p99": …}` in milliseconds by nearest rank; null for no sample.
    private static func percentiles(_ micros: [Int64]) -> JSONValue {
        let sorted = micros.sorted()
        func rank(_ p: Double) -> JSONValue {
            guard !sorted.isEmpty else { return .null }
            let index = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
            return .double(Double(sorted[index]) / 1000)
        }
        return .object([("p50", rank(0.5)), ("p99", rank(0.99))])
    }

    /// Counts per value, most first.
    private static func counted(_ values: [String], key: String) -> JSONValue {
        let counts = Dictionary(values.map { ($0, 1) }, uniquingKeysWith: +).sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        return .array(counts.map { .object([(key, .string($0.key)), ("calls", .int($0.value))]) })
    }

    /// RFC 3339 in UTC, to the second.
    private static func time(_ micros: Int64) -> String {
        Date(timeIntervalSince1970: TimeInterval(micros / 1_000_000)).formatted(.iso8601)
    }
}
