import Foundation
import GatewayTestSupport
import Testing

/// The gateway adds `Klarna-Idempotency-Key` to POST and PATCH calls without one and tells the caller which.
@Suite("Idempotency keys added by the gateway")
struct IdempotencyKeyTests {
    @Test("a key-less POST gets a UUID key, sent to Klarna and returned; a caller's key and a GET are left alone")
    func added() async throws {
        try await withGateway { gw in
            let client = gw.client()
            let headers = [gw.bearer("checkout"), ("Content-Type", "application/json")]
            let body = Array(#"{"currency":"EUR","amount":1000}"#.utf8)
            let created = try await client.send("POST", "/v2/accounts/m1/payment/requests", headers: headers, body: body)
            #expect(created.status == 201)
            let key = try #require(created.header("Klarna-Gateway-Idempotency-Key"))
            #expect(UUID(uuidString: key) != nil)
            #expect(try await gw.received().last?["headers"]?["Klarna-Idempotency-Key"]?.stringValue == key)

            let own = try await client.send("POST", "/v2/accounts/m1/payment/requests", headers: headers + [("Klarna-Idempotency-Key", "caller-own-key")], body: body)
            #expect(own.status == 201 && own.header("Klarna-Gateway-Idempotency-Key") == nil)
            #expect(try await gw.received().last?["headers"]?["Klarna-Idempotency-Key"]?.stringValue == "caller-own-key")

            let read = try await client.send("GET", "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1", headers: [gw.bearer("checkout")])
            #expect(read.status == 200 && read.header("Klarna-Gateway-Idempotency-Key") == nil)
            let sent = try await gw.received().last?["headers"]?["Klarna-Idempotency-Key"]
            #expect(sent == nil || sent == .null)
            try await client.close()
        }
    }
}
