/// First answers to idempotent POST/PATCH calls, by (caller, `Klarna-Idempotency-Key`), kept 24 h.
///
/// A repeat with the same body gets the first answer again; the same key with another body or another operation is
/// a 409 `RESOURCE_CONFLICT`, because Klarna cannot know which of the two the caller meant.
struct IdempotencyCache: Sendable {
    struct Entry: Sendable {
        let fingerprint: String
        let response: SimulatorResponse
        let expiresAtMilliseconds: Int64
    }

    enum Lookup: Sendable {
        case miss
        case replay(SimulatorResponse)
        case conflict
    }

    static let lifetimeMilliseconds: Int64 = 24 * 3600 * 1000
    private var entries: [String: Entry] = [:]
    private var insertions = 0

    func lookup(key: String, fingerprint: String, nowMilliseconds: Int64) -> Lookup {
        guard let entry = entries[key], entry.expiresAtMilliseconds > nowMilliseconds else { return .miss }
        return entry.fingerprint == fingerprint ? .replay(entry.response) : .conflict
    }

    mutating func store(key: String, fingerprint: String, response: SimulatorResponse, nowMilliseconds: Int64) {
        entries[key] = Entry(fingerprint: fingerprint, response: response, expiresAtMilliseconds: nowMilliseconds + Self.lifetimeMilliseconds)
        insertions += 1
        // Sweep now and then so expired keys do not pile up in a long run.
        if insertions % 1024 == 0 { entries = entries.filter { $0.value.expiresAtMilliseconds > nowMilliseconds } }
    }
}
