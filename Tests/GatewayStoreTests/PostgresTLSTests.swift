import GatewayCore
import GatewayPostgres
import Testing

/// `sslmode` is enforced: a mode that demands TLS never falls back to plain TCP. The test server has no TLS, so
/// `require` must fail there, while `prefer` (libpq's default) and `disable` connect.
@Suite struct PostgresTLSTests {
    @Test(arguments: StoreKind.postgresOnly)
    func aModeThatDemandsTLSRefusesAServerWithoutIt(_ kind: StoreKind) async throws {
        let location = try await StoreFixture.freshLocation(kind)
        for mode in ["require", "verify-full"] {
            let error = await #expect(throws: StoreError.self) {
                _ = try await PostgresStore.open(url: location + "?sslmode=\(mode)&connect_timeout=5")
            }
            #expect(error?.message.contains("127.0.0.1") == true, "the error names the server: \(String(describing: error))")
        }
        for mode in ["prefer", "disable"] {
            let store = try await PostgresStore.open(url: location + "?sslmode=\(mode)")
            #expect(try await store.generation() == 0)
            store.close()
        }
    }
}
