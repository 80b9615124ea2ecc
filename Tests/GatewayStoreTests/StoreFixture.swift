import Foundation
import GatewayCore
import GatewayStore
import GatewayVault

/// A fresh store in its own temporary directory (tests run in parallel), with a sealer and planted secrets.
struct StoreFixture {
    let directory: URL
    let path: String
    let store: SQLiteStore
    let sealer = SecretSealer(ring: .generate())

    static let plantedAPIKey = Secret("klarna_test_api_PLANTEDSECRET_store_4f1c9a77e2")
    static let plantedMerchantKey = Secret("klarna_test_api_PLANTEDMERCHANTKEY_b93e")
    static let plantedClientKey = Secret("""
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPLANTEDCLIENTKEYxx
        -----END PRIVATE KEY-----
        """)

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        path = directory.appendingPathComponent("gateway.sqlite").path
        store = try await SQLiteStore.open(path: path)
    }

    func partner(_ id: String = "acq_test", apiKeyVersion: Int = 1) throws -> (PartnerRecord, [SealedSecret]) {
        let record = PartnerRecord(
            id: id, environment: .test, apiKey: SecretOwner.partnerAPIKey(id, version: apiKeyVersion),
            clientCertificatePEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            clientKey: SecretOwner.partnerClientKey(id, version: 1)
        )
        let owner = SecretOwner.partner(id)
        return (
            record,
            [
                try sealer.seal(StoreFixture.plantedAPIKey, owner: owner, credential: record.apiKey),
                try sealer.seal(StoreFixture.plantedClientKey, owner: owner, credential: record.clientKey),
            ]
        )
    }

    static func merchant(_ index: Int, partner: String = "acq_test") -> MerchantRecord {
        MerchantRecord(
            id: "m_\(index)", partnerID: partner, account: AccountKRN("krn:partner:global:account:test:ACC\(index)")!,
            groups: index.isMultiple(of: 2) ? ["even", "eu"] : []
        )
    }

    /// Every byte the database has on disk: main file, WAL and shared memory.
    func allBytes() -> [(String, Data)] {
        ["", "-wal", "-shm"].compactMap { suffix in
            FileManager.default.contents(atPath: path + suffix).map { (path + suffix, $0) }
        }
    }

    func mode(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }
}
