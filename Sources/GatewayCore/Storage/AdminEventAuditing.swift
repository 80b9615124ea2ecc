/// A change-log entry with its row id, as a node claims and records it.
public struct StoredAdminEvent: Sendable, Hashable {
    /// The row's id (`admin_events.id`): the claim names it, and the audit record's request id carries it.
    public var id: Int64
    /// The change.
    public var event: AdminEvent
    /// The node whose claim it is, where that matters (a claim another node may take over); else nil.
    public var claimedBy: String?

    /// Makes a stored event.
    public init(id: Int64, event: AdminEvent, claimedBy: String? = nil) {
        self.id = id
        self.event = event
        self.claimedBy = claimedBy
    }
}

extension AdminEvent {
    /// The event the store writes made in this task append in their own transaction. `AdminService` sets it around
    /// one write; the store protocol's many write methods then need no event parameter, and a change and its
    /// event commit (or fail) together.
    @TaskLocal public static var pending: AdminEvent?

    /// What `auditedBy` holds for events the admin API audited itself, with the admin's name, when it made them.
    public static let auditedByAdminAPI = "admin-api"

    /// Whether the event is a roll-out, a rollback or a release pin: the release history shows these only, since the
    /// change log holds every change the CLI makes.
    public var isReleaseChange: Bool { ["releases.rollout", "releases.rollback", "merchants.release"].contains(action) }

    /// True for a write's result that says it changed nothing (`false`: no such row; `0`: no rows; a partner not
    /// deleted, absent or still in use; a policy version not appended, nil), so that the write appends no event for a
    /// change that did not happen.
    public static func changedNothing<Result>(_ result: Result) -> Bool {
        if let changed = result as? Bool { return !changed }
        if let count = result as? Int { return count == 0 }
        if let deletion = result as? PartnerDeletion { return deletion != .deleted }
        if let appended = result as? PolicyVersion? { return appended == nil }
        return false
    }
}

/// How running nodes record the change log in their audit chains (docs/admin-api.md, "Audit of CLI changes"):
/// each node claims an event no node has claimed, records it, and marks it finished once the record is durable.
/// A claim is one conditional `UPDATE`, so of several instances exactly one wins it; a node re-reads its own
/// unfinished claims, so a crash between claim and finish loses nothing (the record may then be written twice).
/// A claim left unfinished too long (its node never came back) is taken over by another node with one more
/// conditional `UPDATE`, so again exactly one wins it.
public protocol AdminEventAuditing: Sendable {
    /// Up to `limit` events no node has claimed, oldest first.
    func unclaimedAdminEvents(limit: Int) async throws -> [StoredAdminEvent]
    /// Claims an event for `node` at `atMicros`; false when another node claimed it first.
    func claimAdminEvent(id: Int64, node: String, atMicros: Int64) async throws -> Bool
    /// Up to `limit` unfinished events that another node than `node` claimed before `cutoffMicros` (a claim without a
    /// time, made by a binary older than schema version 9, counts from the event's own time), oldest first, each
    /// with its claimant in `claimedBy`.
    func staleAdminEventClaims(claimedBefore cutoffMicros: Int64, excluding node: String, limit: Int) async throws -> [StoredAdminEvent]
    /// Moves `claimant`'s unfinished claim of an event to `node` at `atMicros`, if it is still `claimant`'s and was
    /// made before `cutoffMicros`; false when it was finished, taken over by another node or renewed meanwhile.
    func takeOverAdminEvent(id: Int64, from claimant: String, node: String, claimedBefore cutoffMicros: Int64, atMicros: Int64) async throws -> Bool
    /// The events `node` claimed and has not finished, oldest first.
    func unfinishedAdminEvents(claimedBy node: String) async throws -> [StoredAdminEvent]
    /// Marks `node`'s claimed event as recorded at `atMicros`.
    func finishAdminEvent(id: Int64, node: String, atMicros: Int64) async throws
}
