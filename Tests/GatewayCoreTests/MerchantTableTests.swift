import GatewayCore
import Testing

@Suite("Merchant table")
struct MerchantTableTests {
    @Test("every one of 20,000 merchants is found by id and by account, with all its fields")
    func findsEveryMerchant() {
        let merchants = (0..<20_000).map { index in
            Fixtures.merchant(
                "m\(index)", partner: index % 3 == 0 ? "acq" : "acq_second_partner_with_a_long_id",
                account: "krn:partner:global:account:\(index % 2 == 0 ? "test" : "live"):M\(index)",
                groups: index % 5 == 0 ? ["eu", "group-\(index % 10)"] : [], status: index % 7 == 0 ? .suspended : .active,
                ownKey: index % 11 == 0 ? Fixtures.merchantOwnKey : nil
            )
        }
        let table = MerchantTable(merchants)
        #expect(table.count == merchants.count)
        for merchant in merchants {
            let record = merchant.record
            let byID = table[record.id]
            let byAccount = table[account: record.account.rawValue]
            #expect(byID?.record == record)
            #expect(byAccount?.record == record)
            // As the request path looks it up: a slice of a longer string, not a copy.
            let path = "/v2/accounts/" + record.account.rawValue + "/payment"
            let slice = path.dropFirst("/v2/accounts/".count).prefix(record.account.rawValue.count)
            #expect(table[account: slice]?.record == record)
            #expect(byID?.record.account.accountID == record.account.accountID)
            #expect(byID?.record.account.environment == record.account.environment)
            #expect(byID?.ownAuthorization == merchant.ownAuthorization)
            #expect(byID?.ownKeyEnvironment == merchant.ownKeyEnvironment)
        }
    }

    @Test("unknown ids and accounts are not found, an empty table finds nothing")
    func missing() {
        let table = MerchantTable([Fixtures.merchant("m1", account: "krn:partner:global:account:test:M1")])
        #expect(table["m2"] == nil)
        #expect(table["M1"] == nil)
        #expect(table[account: "krn:partner:global:account:live:M1"] == nil)
        #expect(table[account: "m1"] == nil)
        let empty = MerchantTable([])
        #expect(empty.count == 0)
        #expect(empty["m1"] == nil)
        #expect(empty[account: "krn:partner:global:account:test:M1"] == nil)
    }

    @Test("the table keeps an account's id only: the same id in test and live is two merchants, a long id works too")
    func accountIDsPerEnvironment() {
        let longID = "M" + String(repeating: "x", count: 60)
        let table = MerchantTable([
            Fixtures.merchant("m-test", account: "krn:partner:global:account:test:M1"),
            Fixtures.merchant("m-live", account: "krn:partner:global:account:live:M1"),
            Fixtures.merchant("m-long", account: "krn:partner:global:account:live:" + longID),
        ])
        #expect(table[account: "krn:partner:global:account:test:M1"]?.record.id == "m-test")
        #expect(table[account: "krn:partner:global:account:live:M1"]?.record.id == "m-live")
        #expect(table["m-live"]?.record.account.rawValue == "krn:partner:global:account:live:M1")
        #expect(table[account: "krn:partner:global:account:live:" + longID]?.record.id == "m-long")
        #expect(table["m-long"]?.record.account.accountID == longID[...])
        // An id that is a prefix or an extension of a stored one is not it.
        #expect(table[account: "krn:partner:global:account:test:M"] == nil)
        #expect(table[account: "krn:partner:global:account:test:M10"] == nil)
        #expect(table[account: "krn:partner:global:account:live:" + longID + "y"] == nil)
    }

    @Test("a release pin and a merchant's own key survive the compact form")
    func rareFields() {
        let pinned = MerchantState(
            record: MerchantRecord(
                id: "m1", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M1")!, release: "2026-10-01"
            ),
            ownKey: Fixtures.merchantOwnKey, form: .rawKey
        )
        let table = MerchantTable([pinned, Fixtures.merchant("m2", account: "krn:partner:global:account:test:M2")])
        #expect(table["m1"]?.record.release == "2026-10-01")
        #expect(table["m1"]?.ownAuthorization == pinned.ownAuthorization)
        #expect(table["m2"]?.record.release == nil)
        #expect(table["m2"]?.ownAuthorization == nil)
    }

    @Test("of two merchants with the same id or the same account, the later one wins")
    func laterWins() {
        let table = MerchantTable([
            Fixtures.merchant("m1", account: "krn:partner:global:account:test:OLD"),
            Fixtures.merchant("m2", account: "krn:partner:global:account:test:SHARED"),
            Fixtures.merchant("m1", account: "krn:partner:global:account:test:NEW"),
            Fixtures.merchant("m3", account: "krn:partner:global:account:test:SHARED"),
        ])
        #expect(table.count == 3)
        #expect(table["m1"]?.record.account.rawValue == "krn:partner:global:account:test:NEW")
        #expect(table[account: "krn:partner:global:account:test:NEW"]?.record.id == "m1")
        #expect(table[account: "krn:partner:global:account:test:OLD"] == nil)
        #expect(table[account: "krn:partner:global:account:test:SHARED"]?.record.id == "m3")
    }
}
