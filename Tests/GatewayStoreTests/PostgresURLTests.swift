import GatewayCore
import GatewayPostgres
import Testing

/// The storage URL forms, without a server.
@Suite struct PostgresURLTests {
    @Test func aFullURLIsReadPartByPart() throws {
        let url = try PostgresURL(
            "postgres://kgw:p%40ss@db.internal:6543/gateway?sslmode=verify-full&sslrootcert=/etc/ca.pem&pool_max=7&connect_timeout=3&application_name=gw-a",
            environment: [:])
        #expect(url.host == "db.internal")
        #expect(url.port == 6543)
        #expect(url.username == "kgw")
        #expect(url.password == "p@ss")
        #expect(url.database == "gateway")
        #expect(url.sslMode == .verifyFull)
        #expect(url.sslRootCert == "/etc/ca.pem")
        #expect(url.poolMax == 7)
        #expect(url.connectTimeoutSeconds == 3)
        #expect(url.applicationName == "gw-a")
        #expect(url.unixSocketPath == nil)
    }

    @Test func defaultsFollowLibpq() throws {
        let url = try PostgresURL("postgresql://kgw@[::1]", environment: [:])
        #expect(url.host == "::1")
        #expect(url.port == 5432)
        #expect(url.database == "kgw", "the database defaults to the role's name")
        #expect(url.sslMode == .prefer)
        #expect(url.password == nil)
        #expect(url.description == "postgres://kgw@[::1]:5432/kgw")
    }

    @Test func thePasswordMayComeFromTheEnvironmentAndIsNeverPrinted() throws {
        let url = try PostgresURL("postgres://kgw@localhost/db", environment: ["PGPASSWORD": "s3cret-from-env"])
        #expect(url.password == "s3cret-from-env")
        #expect(!url.description.contains("s3cret"))
        let inline = try PostgresURL("postgres://kgw:inline-s3cret@localhost/db", environment: ["PGPASSWORD": "other"])
        #expect(inline.password == "inline-s3cret", "the URL's own password wins")
        #expect(inline.description == "postgres://kgw:***@localhost:5432/db")
        #expect(PostgresURL.redacted("postgres://kgw:inline-s3cret@localhost/db") == "postgres://kgw:***@localhost/db")
    }

    @Test func aUnixSocketDirectoryIsAccepted() throws {
        let url = try PostgresURL("postgres://kgw@/db?host=/run/postgresql", environment: [:])
        #expect(url.unixSocketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(url.host == nil)
    }

    @Test func mistakesAreRefusedRatherThanGuessed() throws {
        #expect(throws: StoreError.self) { try PostgresURL("postgres://kgw@db/x?sslmod=require", environment: [:]) }
        #expect(throws: StoreError.self) { try PostgresURL("postgres://kgw@db/x?sslmode=verify", environment: [:]) }
        #expect(throws: StoreError.self) { try PostgresURL("postgres://kgw@db/x?pool_max=0", environment: [:]) }
        #expect(throws: StoreError.self) { try PostgresURL("mysql://kgw@db/x", environment: [:]) }
        let error = #expect(throws: StoreError.self) { try PostgresURL("postgres://kgw@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", environment: [:]).clientConfiguration() }
        #expect(error?.message.contains("/nonexistent/ca.pem") == true)
        #expect(!PostgresURL.isPostgresURL("data/gateway.sqlite"))
    }
}
