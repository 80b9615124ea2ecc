import GatewayCore
import Testing

@Suite("Release routing")
struct ReleaseSelectionTests {
    let stage = ReleaseSelection()
    let policy = ReleasePolicy.klarnaCalendar

    func operation(_ id: String) -> Operation { Fixtures.catalogue.operation(id: id)! }
    func operation(introducedIn release: String) -> Operation { Fixtures.catalogue.operations.first { $0.introducedIn == release && !$0.testOnly }! }

    func choose(_ operation: Operation, merchant: MerchantState, partner: PartnerState = Fixtures.partner("acq"), environment: KlarnaEnvironment = .test, headers: [(String, String)] = [], grant: Grant = Grant(), rollouts: [Rollout] = [], policy: ReleasePolicy? = nil, today: String = "2026-11-28") throws(GatewayError) -> ReleaseSelection.Choice {
        try stage.choose(operation: operation, target: .merchant(merchant, partner), environment: environment, headers: HeaderList(headers), grant: grant, policy: policy ?? self.policy, rollouts: rollouts, today: today)
    }

    func pinned(_ release: String?, groups: [String] = [], id: String = "m1", environment: String = "test") -> MerchantState {
        MerchantState(record: MerchantRecord(id: id, partnerID: "acq", account: AccountKRN("krn:partner:global:account:\(environment):M1")!, groups: groups, release: release), ownKey: nil, form: .rawKey)
    }

    @Test("an unpinned merchant gets the newest release available in its environment today")
    func latest() throws {
        #expect(try choose(operation(introducedIn: "r3"), merchant: pinned(nil)).release.id == "r9")
        #expect(try choose(operation(introducedIn: "r3"), merchant: pinned(nil), today: "2025-06-20").release.id == "r8")
        #expect(try choose(operation(introducedIn: "r3"), merchant: pinned(nil, environment: "live"), environment: .live, today: "2025-06-20").release.id == "r7")
    }

    @Test("an operation newer than the effective release is refused, naming the release that introduces it")
    func notInRelease() {
        let r7 = operation(introducedIn: "r7")
        do {
            _ = try choose(r7, merchant: pinned("r5"))
            Issue.record("should refuse")
        } catch {
            #expect(error.code == .operationNotInRelease)
            #expect(error.message.contains("r7"))
        }
        #expect(throws: Never.self) { try choose(r7, merchant: pinned("r7")) }
    }

    @Test("test-only operations are refused for live merchants")
    func testOnly() {
        let simulate = Fixtures.catalogue.operations.first { $0.testOnly }!
        #expect(throws: GatewayError.self) { try choose(simulate, merchant: pinned(nil, environment: "live"), environment: .live) }
        #expect(throws: Never.self) { try choose(simulate, merchant: pinned(nil)) }
    }

    @Test("a release not yet available in the environment is 409")
    func notAvailable() {
        do {
            _ = try choose(operation(introducedIn: "r3"), merchant: pinned("r9", environment: "live"), environment: .live, today: "2025-08-20")
            Issue.record("should refuse")
        } catch {
            #expect(error.code == .releaseNotAvailable)
        }
    }

    @Test("precedence: override, merchant pin, roll-out, group pin, partner default, latest")
    func precedence() throws {
        let op = operation(introducedIn: "r3")
        var partnerRecord = Fixtures.partner("acq").record
        partnerRecord.defaultRelease = "r4"
        let partner = PartnerState(record: partnerRecord, apiKey: Fixtures.testKey, clientKeyPEM: Secret("k"), certificateFingerprint: "ab")!
        var groupPolicy = policy
        groupPolicy.groups = ["eu": "r5"]
        #expect(try choose(op, merchant: pinned(nil), partner: partner, policy: groupPolicy).source == .partner)
        #expect(try choose(op, merchant: pinned(nil, groups: ["eu"]), partner: partner, policy: groupPolicy).release.id == "r5")
        let everyone = Rollout(release: "r6", percent: 100, group: nil)
        #expect(try choose(op, merchant: pinned(nil, groups: ["eu"]), partner: partner, rollouts: [everyone], policy: groupPolicy).release.id == "r6")
        #expect(try choose(op, merchant: pinned("r3", groups: ["eu"]), partner: partner, rollouts: [everyone], policy: groupPolicy).release.id == "r3")
        let override = [("Klarna-Gateway-Release", "r8")]
        #expect(try choose(op, merchant: pinned("r3"), headers: override, grant: Grant(permissions: ["release-override"])).release.id == "r8")
        #expect(throws: GatewayError.self) { try choose(op, merchant: pinned("r3"), headers: override) }
    }

    @Test("roll-outs are stable: raising the share only adds merchants, lowering only removes them")
    func rolloutMonotone() {
        let merchants = (0..<2000).map { MerchantRecord(id: "m\($0)", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M\($0)")!, groups: $0 % 2 == 0 ? ["eu"] : []) }
        func chosen(_ percent: Double, group: String? = nil) -> Set<String> {
            Set(merchants.filter { Rollout(release: "r9", percent: percent, group: group).includes($0) }.map(\.id))
        }
        let ten = chosen(10), fifty = chosen(50), hundred = chosen(100)
        #expect(ten.isSubset(of: fifty))
        #expect(fifty.isSubset(of: hundred))
        #expect(hundred.count == 2000)
        #expect(abs(ten.count - 200) < 60)
        #expect(abs(fifty.count - 1000) < 100)
        #expect(chosen(100, group: "eu").count == 1000)
        #expect(chosen(0).isEmpty)
    }

    @Test("the calendar validates against the catalogue")
    func calendarProblems() {
        let introductions = Set(Fixtures.catalogue.operations.map(\.introducedIn))
        #expect(policy.problems(knownIntroductions: introductions).isEmpty)
        var broken = policy
        broken.groups = ["eu": "r42"]
        broken.releases.append(Release(id: "r10", name: "x", test: "2026-13-01x", live: "2025-01-01", apiMajor: "v2"))
        #expect(broken.problems(knownIntroductions: introductions).count == 3)
    }
}
