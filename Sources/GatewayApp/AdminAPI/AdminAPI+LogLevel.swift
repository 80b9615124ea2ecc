import GatewayCore
import Logging

/// The process's log level as an admin resource: read by any role, changed by an operator under `If-Match`, the
/// change audited like every other (the listener's own `PUT /log-level` is neither, and loopback only).
extension AdminAPI.Exchange {
    /// `GET /admin/v1/log-level`: the level in force, with its `ETag`.
    func getLogLevel() -> AdminResponse {
        let level = JSONLogHandler.level.rawValue
        return AdminResponse(.ok, json: .object([("level", .string(level))]), requestID: requestID, etag: Self.logLevelETag(level))
    }

    /// `PUT /admin/v1/log-level` with `{"level": "debug"}` under `If-Match`: sets the level until the next restart or
    /// a change of `log_level` in the config file (docs/operations.md).
    func setLogLevel() async throws -> AdminResponse {
        let body = try AdminRequestBody(request.body, allowed: ["level"], shape: #"{"level": "info"}"#)
        let name = try body.requiredString("level", maxLength: 16)
        guard let level = Logger.Level(rawValue: name) else {
            throw GatewayError(.badRequest, "level is one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        _ = try ifMatch(Self.logLevelETag(JSONLogHandler.level.rawValue), of: "log level", readAt: "/admin/v1/log-level")
        try await api.recordIntent(self, merchant: nil)
        JSONLogHandler.setLevel(level)
        await api.recordOutcome(self, merchant: nil, status: 200, inSnapshot: false)
        return getLogLevel()
    }

    /// A level's entity tag, in the API's one shape (a quoted string of 32 hex digits).
    static func logLevelETag(_ level: String) -> String { EntityTag.hashing("log-level\u{1E}" + level) }
}
