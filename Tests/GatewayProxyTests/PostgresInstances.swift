import Foundation
import GatewayApp
import GatewayCore
import GatewayPostgres
import GatewayTestSupport

/// Gateway instances sharing one new PostgreSQL database, each with a loopback listener and polling off (an hour),
/// so that only a notification can bring a change; the directory holds their configs, the key ring and the grants.
struct PostgresInstances {
    let directory: URL
    let configs: [GatewayConfig]

    /// Configs for `nodes` on a new database of the server bin/with-postgres started, and the key ring; with
    /// `rateLimits`, that text as every node's `rate-limits.yaml`.
    init(server: String, databasePrefix: String, nodes: [String], rateLimits: String? = nil) async throws {
        let database = try await PostgresStore.createDatabase(named: TestPostgres.databaseName(databasePrefix), on: server)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-pg-\(UUID().uuidString.prefix(8))")
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        try GatewayHarness.defaultAccess.write(to: directory.appendingPathComponent("access.yaml"), atomically: true, encoding: .utf8)
        try rateLimits?.write(to: directory.appendingPathComponent("rate-limits.yaml"), atomically: true, encoding: .utf8)
        let configs = try nodes.map { node in
            let path = directory.appendingPathComponent("\(node).yaml")
            try """
                node_id: \(node)
                storage: "\(database)"
                master_key: {file: master.key}
                catalogue: \(repository.appendingPathComponent("config/catalogue/operations.tsv").path)
                policies: {access: access.yaml\(rateLimits == nil ? "" : ", rate_limits: rate-limits.yaml")}
                listeners:
                  - {name: loopback, address: 127.0.0.1, port: 0}
                # The test partner's base URL (nothing listens there): a call is refused only after it is admitted.
                upstream: {egress: [{host: "localhost:9", environment: test}]}
                # An hour: within a test, only a notification can bring a change.
                reload_interval_ms: 3600000
                """.write(to: path, atomically: true, encoding: .utf8)
            return try ConfigLoader.loadGateway(path: path.path, environment: [:])
        }
        self.configs = configs
        try AdminService.initializeKeyRing(config: configs[0])
    }

    /// The store of the first config, opened for changes, holding one test partner (`acq`, a generated key and a
    /// throwaway certificate, an allowed but unreachable base URL) and `merchant` on account `account`.
    func adminWithOnePartner(merchant: String, account: String) async throws -> AdminService {
        let admin = try await AdminService.open(config: configs[0], environment: [:])
        let acquirer = try TestPKI().issueClient(commonName: "acquirer")
        _ = try await admin.addPartner(NewPartner(
            id: "acq", environment: .test, apiKey: Secret("klarna_test_api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")),
            certificatePEM: acquirer.certificatePEM, clientKeyPEM: Secret(acquirer.privateKeyPEM), baseURL: "https://localhost:9",
            authForm: .rawKey))
        try await admin.addMerchant(id: merchant, partnerID: "acq", account: account)
        return admin
    }
}
