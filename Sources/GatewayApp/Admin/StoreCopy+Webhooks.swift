import GatewayCore

/// The webhook part of `store copy`: destinations, then events with their deliveries and attempts, a page at a
/// time so a store with a week of bodies is never held in memory whole. Destination secrets and client keys are
/// sealed secrets, copied as bytes with the others; the destination records only name them.
extension StoreCopy {
    /// Events per page, read and written (and verified) as one transaction each.
    static let webhookPage = 500

    /// What the webhook copy moved.
    struct WebhookCounts: Equatable {
        var destinations = 0
        var events = 0
        var deliveries = 0
    }

    /// The stores' webhook tables, or nil when neither store has them; a destination without them is refused only when
    /// the source has something to copy.
    static func webhookStores(
        _ source: any GatewayStore, _ destination: any GatewayStore
    ) async throws -> (source: any WebhookStore, destination: any WebhookStore)? {
        guard let from = source as? any WebhookStore else { return nil }
        guard let to = destination as? any WebhookStore else {
            if try await holdsWebhooks(from) {
                throw AdminError("the destination store cannot hold webhooks, and the source has some")
            }
            return nil
        }
        return (from, to)
    }

    /// Whether the destination already holds webhook records.
    static func holdsWebhooks(_ store: any WebhookStore) async throws -> Bool {
        if try await !store.webhookDestinations().isEmpty { return true }
        return try await !store.webhookEventCopies(after: nil, limit: 1).isEmpty
    }

    /// Copies destinations and every event as it stands (leases left free: they name instances of the source).
    static func copyWebhooks(from source: any WebhookStore, to destination: any WebhookStore) async throws -> WebhookCounts {
        var counts = WebhookCounts()
        for record in try await source.webhookDestinations() {
            try await destination.saveWebhookDestination(record, secrets: [])
            counts.destinations += 1
        }
        var after: String?
        while true {
            let page = try await source.webhookEventCopies(after: after, limit: webhookPage)
            guard let last = page.last else { break }
            try await destination.insertWebhookEventCopies(page)
            counts.events += page.count
            counts.deliveries += page.reduce(0) { $0 + $1.deliveries.count }
            after = last.event.eventID
        }
        return counts
    }

    /// Reads both stores' webhook tables back, page by page in the same order, and names the first difference.
    public static func verifyWebhooks(source: any WebhookStore, destination: any WebhookStore) async throws {
        var problems: [String] = []
        let (expected, actual) = (try await source.webhookDestinations(), try await destination.webhookDestinations())
        if expected.count != actual.count {
            problems.append("webhook destinations: \(expected.count) in the source, \(actual.count) in the destination")
        } else if expected != actual {
            problems.append("webhook destinations: same count (\(expected.count)) but different records")
        }
        var after: String?
        var compared = 0
        while problems.isEmpty {
            let (mine, theirs) = (
                try await source.webhookEventCopies(after: after, limit: webhookPage),
                try await destination.webhookEventCopies(after: after, limit: webhookPage)
            )
            if mine != theirs {
                let shorter = min(mine.count, theirs.count)
                let index = (0..<shorter).first { mine[$0] != theirs[$0] } ?? shorter
                let id = (index < mine.count ? mine[index] : theirs[index]).event.eventID
                problems.append("webhook events: event \(id) differs or is missing (after \(compared + index) equal events)")
            }
            guard let last = mine.last else { break }
            compared += mine.count
            after = last.event.eventID
        }
        guard problems.isEmpty else { throw AdminError("the copy does not match its source: " + problems.joined(separator: "; ")) }
    }
}
