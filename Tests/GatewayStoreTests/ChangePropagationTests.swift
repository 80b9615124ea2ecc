import Foundation
import GatewayCore
import GatewayStore
import NIOConcurrencyHelpers
import Testing

/// Changes pushed from the store to every listening instance (PostgreSQL's LISTEN/NOTIFY).
@Suite struct ChangePropagationTests {
    /// Counts notifications and lets a test wait for the next one.
    final class Notifications: Sendable {
        private let count = NIOLockedValueBox(0)
        func record() { count.withLockedValue { $0 += 1 } }
        var seen: Int { count.withLockedValue { $0 } }

        /// True once more than `previous` notifications arrived, false after `timeout`.
        func wait(beyond previous: Int, timeout: Duration) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if seen > previous { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return seen > previous
        }
    }

    @Test func sqliteHasNoPushAndSaysSo() async throws {
        let fixture = try await StoreFixture(.sqlite)
        #expect(try await fixture.store.watchChanges({}) == false)
    }

    @Test(arguments: StoreKind.postgresOnly)
    func aWriteThroughOneInstanceIsPushedToAnother(_ kind: StoreKind) async throws {
        let fixture = try await StoreFixture(kind)
        let (partner, secrets) = try fixture.partner()
        try await fixture.store.savePartner(partner, secrets: secrets)
        let watcher = try await fixture.reopen()
        let notifications = Notifications()
        let listening = Task { try await watcher.watchChanges { notifications.record() } }
        defer { listening.cancel() }

        // Every listen starts with one call, made once it is registered: a change committed before it (here, the
        // partner above) notified nobody, and the gateway checks the store once instead.
        #expect(await notifications.wait(beyond: 0, timeout: .seconds(30)), "no call once the listen was registered")

        // Now a merchant added through the other instance: notified, and readable when the notice arrives.
        let before = notifications.seen
        try await fixture.store.saveMerchants([StoreFixture.merchant(42)], secrets: [])
        #expect(await notifications.wait(beyond: before, timeout: .seconds(30)))
        #expect(try await watcher.merchant(id: "m_42") == StoreFixture.merchant(42))
        // A refused write notifies nobody: its transaction, NOTIFY included, rolled back.
        let afterMerchant = notifications.seen
        await #expect(throws: (any Error).self) { try await fixture.store.saveMerchants([StoreFixture.merchant(1, partner: "ghost")], secrets: []) }
        try await fixture.store.appendAdminEvent(AdminEvent(timeMicros: 1, actor: "t", action: "x", detail: ""))
        try await fixture.store.saveRollout(Rollout(release: "v2/r6", percent: 5, group: nil))
        #expect(await notifications.wait(beyond: afterMerchant, timeout: .seconds(30)))
        #expect(notifications.seen == afterMerchant + 1, "only the roll-out notified")
    }
}
