import Foundation
import GatewayAudit
import GatewayCore
import GatewayProxy

/// The read-only operational resources as JSON: what `/readyz` knows, the audit trail's records, the releases.
extension AdminJSON {
    /// The audit writer's health, as `/readyz` reports it plus its checkpoint; `{"enabled":false}` without a trail.
    static func auditStatus(_ health: AuditHealth?) -> JSONValue {
        guard let health else { return .object([("enabled", .bool(false))]) }
        return .object([("enabled", .bool(true))] + auditHealth(health))
    }

    /// The fields of a writer's health (`/readyz`'s `audit` object and `GET /admin/v1/audit/status`).
    static func auditHealth(_ health: AuditHealth) -> [(String, JSONValue)] {
        [
            ("healthy", .bool(health.isHealthy)),
            ("queue_depth", .int(health.queueDepth)),
            ("last_seq", .int(Int(health.lastSeq))),
            ("last_checkpoint_seq", .int(Int(health.lastCheckpointSeq))),
            ("consecutive_failures", .int(health.consecutiveFailures)),
            ("queue_full_refusals", .int(health.queueFullRefusals)),
            ("last_error", health.lastError.map(JSONValue.string) ?? .null),
            ("last_error_time_us", health.lastErrorTimeMicros.map { .int(Int($0)) } ?? .null),
        ]
    }

    /// Each upstream host's breaker (hosts appear once first called) and the calls in flight, all read from state
    /// the proxy keeps anyway: nothing is added to the request path.
    static func upstreams(_ runtime: ProxyRuntime) -> JSONValue {
        .object([
            ("calls_in_flight", .int(runtime.callsInFlight)),
            ("hosts", .array(runtime.breakers.states.map { .object([("host", .string($0.host)), ("breaker", .string($0.state))]) })),
        ])
    }

    /// The release calendar in force per environment, with the release a merchant without pin, roll-out, group or
    /// partner default gets today, and how many merchants are pinned to each release.
    static func releases(_ snapshot: GatewaySnapshot, now: Date = Date()) -> JSONValue {
        let today = UTCTime.day(epochSeconds: Int(now.timeIntervalSince1970))
        let policy = snapshot.releases
        let pins = snapshot.merchants.releasePins()
        let environments = KlarnaEnvironment.allCases.map { environment -> JSONValue in
            .object([
                ("environment", .string(environment.rawValue)),
                ("latest", policy.latest(in: environment, on: today).map { .string($0.id) } ?? .null),
                ("releases", .array(policy.releases.map { release in
                    .object([
                        ("id", .string(release.id)),
                        ("name", .string(release.name)),
                        ("api_major", .string(release.apiMajor)),
                        ("available_from", release.availableFrom(environment).map(JSONValue.string) ?? .null),
                        ("available", .bool(release.isAvailable(in: environment, on: today))),
                        ("pinned_merchants", .int(pins[environment]?[release.id] ?? 0)),
                    ])
                })),
            ])
        }
        return .object([
            ("today", .string(today)),
            ("snapshot", .int(Int(snapshot.version))),
            ("environments", .array(environments)),
            ("group_pins", .array(policy.groups.sorted { $0.key < $1.key }.map { .object([("group", .string($0.key)), ("release", .string($0.value))]) })),
            ("rollouts", .array(snapshot.rollouts.map { rollout in
                .object([("release", .string(rollout.release)), ("percent", .double(rollout.percent)), ("group", rollout.group.map(JSONValue.string) ?? .null)])
            })),
        ])
    }
}
