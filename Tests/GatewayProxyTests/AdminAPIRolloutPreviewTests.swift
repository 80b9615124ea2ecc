import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 18's roll-out preview: which merchants of an environment a roll-out would move, from the running
/// gateway's snapshot, on a real admin listener over a real store; nothing changes.
@Suite("Admin API: roll-out preview")
struct AdminAPIRolloutPreviewTests {
    static let path = "/admin/v1/releases/rollout-preview"

    @Test("a release becoming the default moves every merchant without a pin; a share or a group moves the hash-chosen ones; a page at a time")
    func preview() async throws {
        try await withAdminAPI { api in
            let latest = try #require(api.gw.service.runtime.snapshots.current.releases.latest(in: .test, on: AdminService.today())?.id)
            #expect(latest != "r8")
            let all = try await api.send("GET", Self.path + "?environment=test&release=r8", as: .viewer)
            #expect(all.status == 200)
            #expect(all.json["merchants"]?.intValue == 4)
            #expect(all.json["moving"]?.intValue == 4)
            #expect(all.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == ["m1", "m2", "m3", "m4"])
            #expect(all.json["available"]?.boolValue == true)
            #expect(all.json["percent"]?.intValue == 100)
            let changes = all.json["changes"]?.arrayValue ?? []
            #expect(changes.count == 1)
            #expect(changes.first?["from"]?.stringValue == latest && changes.first?["to"]?.stringValue == "r8" && changes.first?["merchants"]?.intValue == 4)
            // The release merchants already get today moves nobody.
            #expect(try await api.send("GET", Self.path + "?environment=test&release=\(latest)", as: .viewer).json["moving"]?.intValue == 0)

            // A pinned merchant never moves; a group limits the roll-out to its members.
            let pinned = try await api.send(
                "PUT", "/admin/v1/merchants/m4/release", as: .operator, headers: [("If-Match", try await api.etag("m4"))], body: #"{"release":"r5"}"#)
            #expect(pinned.status == 200)
            try await api.gw.waitForReload()
            let unpinned = try await api.send("GET", Self.path + "?environment=test&release=r8", as: .viewer)
            #expect(unpinned.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == ["m1", "m2", "m3"])
            #expect(unpinned.json["merchants"]?.intValue == 4)
            let group = try await api.send("GET", Self.path + "?environment=test&release=r8&group=eu", as: .viewer)
            #expect(group.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == ["m2"])
            #expect(group.json["group"]?.stringValue == "eu")
            #expect(try await api.send("GET", Self.path + "?environment=test&release=r8&percent=0", as: .viewer).json["moving"]?.intValue == 0)

            // A share: exactly the merchants the roll-out's fixed hash includes, as `releases rollout` would choose them.
            let records = try await api.gw.admin.store.merchants()
            for percent in [10.0, 50.0, 75.5] {
                let rollout = Rollout(release: "r8", percent: percent, group: nil)
                let expected = records.filter { $0.account.environment == .test && $0.release == nil && rollout.includes($0) }.map(\.id).sorted()
                let share = try await api.send("GET", Self.path + "?environment=test&release=r8&percent=\(percent)", as: .viewer)
                #expect(share.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == expected, "\(percent)%")
            }
            // The live environment has its own merchants.
            let live = try await api.send("GET", Self.path + "?environment=live&release=r8", as: .viewer)
            #expect(live.json["merchants"]?.intValue == 1)
            #expect(live.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == ["m_live"])

            // Paging walks the ids once, in order.
            var walked: [String] = []
            var cursor: String?
            for _ in 0..<10 {
                let page = try await api.send("GET", Self.path + "?environment=test&release=r8&limit=1" + (cursor.map { "&after=\($0)" } ?? ""), as: .viewer)
                walked += page.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
                guard let next = page.json["next_cursor"]?.stringValue else { break }
                cursor = next
            }
            #expect(walked == ["m1", "m2", "m3"])

            // Nothing changed: no roll-out in the store or the snapshot, and the merchants' records are as they were.
            #expect(try await api.gw.admin.store.rollouts().isEmpty)
            #expect(api.gw.service.runtime.snapshots.current.rollouts.isEmpty)
            #expect(try await api.gw.admin.store.merchants() == records)

            // With r8 rolled out to all, taking it back to 0% moves its merchants back to the newest release; a
            // roll-out of another group leaves it in force for them.
            try await api.gw.admin.rollOut(release: "r8", percent: 100, group: nil, policy: api.gw.service.runtime.snapshots.current.releases)
            try await api.gw.waitForReload()
            #expect(try await api.send("GET", Self.path + "?environment=test&release=r8", as: .viewer).json["moving"]?.intValue == 0)
            let back = try await api.send("GET", Self.path + "?environment=test&release=r8&percent=0", as: .viewer)
            #expect(back.json["merchant_ids"]?.arrayValue?.compactMap(\.stringValue) == ["m1", "m2", "m3"])
            #expect(back.json["changes"]?.arrayValue?.first?["from"]?.stringValue == "r8")
            #expect(back.json["changes"]?.arrayValue?.first?["to"]?.stringValue == latest)
            #expect(try await api.send("GET", Self.path + "?environment=test&release=r8&percent=0&group=eu", as: .viewer).json["moving"]?.intValue == 0)
        }
    }

    @Test("bad input is 400, an unknown release 404, no token 401; every role may read it; nothing secret in an answer")
    func refusalsAndSecrets() async throws {
        try await withAdminAPI { api in
            for bad in [
                "release=r8", "environment=prod&release=r8", "environment=test", "environment=test&release=", "environment=test&release=r8&percent=101",
                "environment=test&release=r8&percent=x", "environment=test&release=r8&percent=nan", "environment=test&release=r8&limit=0",
                "environment=test&release=r8&group=" + String(repeating: "g", count: 65), "environment=test&release=r8&after=" + String(repeating: "m", count: 65),
            ] {
                #expect(try await api.send("GET", Self.path + "?" + bad, as: .viewer).errorCode == "GATEWAY_BAD_REQUEST", "\(bad)")
            }
            #expect(try await api.send("GET", Self.path + "?environment=test&release=r99", as: .viewer).errorCode == "GATEWAY_NOT_FOUND")
            #expect(try await api.send("GET", Self.path + "?environment=test&release=r8", as: nil).status == 401)
            #expect(try await api.send("POST", Self.path + "?environment=test&release=r8", as: .operator).status == 405)
            let text = try await api.readAsEveryRole([Self.path + "?environment=test&release=r8"])
            #expect(text.contains("m2"), "the search below would search an empty answer")
            try await api.expectNoSecret(in: text)
        }
    }
}
