import Foundation
import GatewayCore
import PostgresNIO

extension PostgresStore {
    /// Creates an empty database on the server at `serverURL` and returns the URL of the new database (same
    /// role, host and parameters); for first set-up and for tests, which give each case its own database.
    public static func createDatabase(named name: String, on serverURL: String) async throws -> String {
        guard name.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw StoreError("\(name) is not a plain database name (lower-case letters, digits, underscores)")
        }
        let url = try PostgresURL(serverURL)
        var configuration = try url.clientConfiguration()
        configuration.options.maximumConnections = 1
        let client = PostgresClient(configuration: configuration)
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        do {
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        } catch {
            throw storeError(error, url: url)
        }
        guard var components = URLComponents(string: serverURL) else { throw StoreError("unparsable URL \(url)") }
        components.path = "/" + name
        return components.string ?? serverURL
    }
}
