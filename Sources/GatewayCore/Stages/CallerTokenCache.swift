/// Token answers already given on one event loop, against one snapshot.
///
/// A connection's memo of its last answer missed whenever callers rotate tokens over their connections (the bench
/// does) or share them across connections (real callers do), and each miss parsed, looked up and hashed the token
/// again: 3% of a call's CPU. One cache per event loop answers all of that loop's connections.
///
/// Keyed by the token's public id (the number its hex spells), never by its secret. An entry keeps the
/// `Authorization` value its answer was made for, as a connection's memo kept it, and answers only a request that
/// presents exactly that value (compared in constant time) with the same client certificate. It answers only for
/// the snapshot it was filled from, which it holds weakly: the first use with any other snapshot (a reload that
/// revokes, rotates or rebinds a caller makes a new one) empties it, so a revoked token stops working at the next
/// snapshot as it did without the cache. Refusals are never kept, so wrong tokens cannot fill it, and it holds
/// at most `capacity` callers, dropping one to make room for another.
///
/// Not `Sendable`, and without a lock: each event loop has its own, used only on that loop.
public final class CallerTokenCache {
    private struct Entry {
        let authorization: String
        let fingerprint: String?
        let result: CallerAuthentication.Result
    }

    /// The most callers kept at once.
    public let capacity: Int
    private weak var snapshot: GatewaySnapshot?
    private var entries: [UInt64: Entry] = [:]

    /// An empty cache that keeps up to `capacity` callers' answers (at least one).
    public init(capacity: Int = 1024) {
        self.capacity = max(1, capacity)
    }

    /// Callers whose answers are kept now.
    public var count: Int { entries.count }

    /// The answer kept for token `number` when `authorization` and `fingerprint` are exactly what it was made for,
    /// against `snapshot`; nil otherwise.
    func answer(token number: UInt64, authorization: String, fingerprint: String?, in snapshot: GatewaySnapshot) -> CallerAuthentication.Result? {
        guard let entry = entries[number] else { return nil }
        guard self.snapshot === snapshot else {
            forget()
            return nil
        }
        guard entry.fingerprint == fingerprint, ConstantTime.equal(entry.authorization.utf8, authorization.utf8) else { return nil }
        return entry.result
    }

    /// Keeps a successful token answer made against `snapshot`, for the same `authorization` and `fingerprint`.
    func keep(
        _ result: CallerAuthentication.Result, token number: UInt64, authorization: String, fingerprint: String?, in snapshot: GatewaySnapshot
    ) {
        if self.snapshot !== snapshot {
            forget()
            self.snapshot = snapshot
        }
        if entries.count >= capacity && entries[number] == nil {
            // Any one: the cache only saves a hash, and with far fewer active callers than `capacity` it never fills.
            entries.remove(at: entries.startIndex)
        }
        entries[number] = Entry(authorization: authorization, fingerprint: fingerprint, result: result)
    }

    private func forget() {
        entries.removeAll(keepingCapacity: true)
        snapshot = nil
    }
}
