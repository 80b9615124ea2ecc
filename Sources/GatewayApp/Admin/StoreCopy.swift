import GatewayCore
import GatewayStore

/// `klarna-gateway store copy`: every record of one store into another (SQLite → PostgreSQL to move an embedded
/// deployment onto a shared database, or back), then a read-back that must match record for record.
///
/// Sealed secrets are copied as bytes: both stores hold what the vault sealed, under the same master key ring,
/// so the copy needs no key and never opens a secret. Webhook destinations, events, deliveries and attempts are
/// copied with their states (`StoreCopy+Webhooks`). The audit trail is not part of the store: a node's SQLite
/// audit file is copied by `AuditCopy` (`store copy --audit-from`).
public enum StoreCopy {
    /// What was copied, by kind.
    public struct Report: Sendable, Equatable, CustomStringConvertible {
        /// Partners copied.
        public var partners: Int
        /// Merchants copied.
        public var merchants: Int
        /// Callers copied.
        public var callers: Int
        /// Sealed secrets copied.
        public var secrets: Int
        /// Roll-outs copied.
        public var rollouts: Int
        /// Change-log entries copied.
        public var adminEvents: Int
        /// Webhook destinations copied.
        public var webhookDestinations: Int
        /// Webhook events copied (with their deliveries and attempts).
        public var webhookEvents: Int
        /// Webhook deliveries copied.
        public var webhookDeliveries: Int
        /// Admin accounts copied.
        public var adminAccounts: Int
        /// Policy versions copied.
        public var policyVersions: Int

        /// Makes a report.
        public init(
            partners: Int, merchants: Int, callers: Int, secrets: Int, rollouts: Int, adminEvents: Int, webhookDestinations: Int = 0,
            webhookEvents: Int = 0, webhookDeliveries: Int = 0, adminAccounts: Int = 0, policyVersions: Int = 0
        ) {
            self.partners = partners
            self.merchants = merchants
            self.callers = callers
            self.secrets = secrets
            self.rollouts = rollouts
            self.adminEvents = adminEvents
            self.webhookDestinations = webhookDestinations
            self.webhookEvents = webhookEvents
            self.webhookDeliveries = webhookDeliveries
            self.adminAccounts = adminAccounts
            self.policyVersions = policyVersions
        }

        /// One line per kind.
        public var description: String {
            """
            partners      \(partners)
            merchants     \(merchants)
            callers       \(callers)
            secrets       \(secrets) (sealed bytes, copied as they are)
            rollouts      \(rollouts)
            admin events  \(adminEvents)
            admin accounts  \(adminAccounts) (token hashes, copied as they are)
            policy versions  \(policyVersions)
            webhook destinations  \(webhookDestinations)
            webhook events        \(webhookEvents) (\(webhookDeliveries) deliveries; states, attempts and next times as they were, leases free)
            """
        }
    }

    /// Copies everything from `source` into `destination`, which must be empty, and verifies the copy.
    ///
    /// Several write transactions (one per kind) rather than one: the stores are separate databases. A copy
    /// that fails part-way leaves a destination that a second attempt refuses as not empty; drop it and retry.
    public static func copy(from source: any GatewayStore, to destination: any GatewayStore) async throws -> Report {
        let existing = try await destination.contents()
        let existingEvents = try await destination.adminEvents()
        let webhooks = try await webhookStores(source, destination)
        var existingWebhooks = false
        if let webhooks { existingWebhooks = try await holdsWebhooks(webhooks.destination) }
        let existingAdmins = try await holdsAdminAccounts(destination)
        let existingPolicies = try await holdsPolicyVersions(destination)
        guard existing.partners.isEmpty, existing.merchants.isEmpty, existing.callers.isEmpty, existing.secrets.isEmpty,
            existing.rollouts.isEmpty, existingEvents.isEmpty, !existingWebhooks, !existingAdmins, !existingPolicies
        else {
            throw AdminError(
                "the destination store is not empty (\(existing.partners.count) partners, \(existing.merchants.count) merchants, "
                    + "\(existing.callers.count) callers, \(existing.secrets.count) secrets); copy only into a new, migrated store")
        }
        let contents = try await source.contents()
        let events = try await source.adminEvents()

        for partner in contents.partners { try await destination.savePartner(partner, secrets: []) }
        // Merchants in batches: one transaction each, bounded in size whatever the deployment's.
        for start in stride(from: 0, to: contents.merchants.count, by: 5_000) {
            let batch = Array(contents.merchants[start..<min(start + 5_000, contents.merchants.count)])
            try await destination.saveMerchants(batch, secrets: [])
        }
        for caller in contents.callers { try await destination.saveCaller(caller) }
        if !contents.secrets.isEmpty { try await destination.saveSecrets(contents.secrets) }
        for rollout in contents.rollouts { try await destination.saveRollout(rollout) }
        for event in events { try await destination.appendAdminEvent(event) }
        var copied = WebhookCounts()
        if let webhooks { copied = try await copyWebhooks(from: webhooks.source, to: webhooks.destination) }

        try await verify(source: contents, sourceEvents: events, destination: destination)
        if let webhooks { try await verifyWebhooks(source: webhooks.source, destination: webhooks.destination) }
        let adminAccounts = try await copyAdminAccounts(from: source, to: destination)
        let policyVersions = try await copyPolicyVersions(from: source, to: destination)
        return Report(
            partners: contents.partners.count, merchants: contents.merchants.count, callers: contents.callers.count,
            secrets: contents.secrets.count, rollouts: contents.rollouts.count, adminEvents: events.count,
            webhookDestinations: copied.destinations, webhookEvents: copied.events, webhookDeliveries: copied.deliveries,
            adminAccounts: adminAccounts, policyVersions: policyVersions)
    }

    /// Reads the destination back and compares it with the source, kind by kind: counts, then the records.
    public static func verify(source: StoreContents, sourceEvents: [AdminEvent], destination: any GatewayStore) async throws {
        let copied = try await destination.contents()
        let copiedEvents = try await destination.adminEvents()
        var problems: [String] = []
        func check<T: Hashable>(_ kind: String, _ expected: [T], _ actual: [T]) {
            if expected.count != actual.count {
                problems.append("\(kind): \(expected.count) in the source, \(actual.count) in the destination")
            } else if Set(expected) != Set(actual) {
                problems.append("\(kind): same count (\(expected.count)) but different records")
            }
        }
        check("partners", source.partners, copied.partners)
        check("merchants", source.merchants, copied.merchants)
        check("callers", source.callers, copied.callers)
        check("secrets", source.secrets, copied.secrets)
        check("rollouts", source.rollouts, copied.rollouts)
        if sourceEvents != copiedEvents {
            problems.append("admin events: \(sourceEvents.count) in the source, \(copiedEvents.count) in the destination, or out of order")
        }
        guard problems.isEmpty else { throw AdminError("the copy does not match its source: " + problems.joined(separator: "; ")) }
    }
}
