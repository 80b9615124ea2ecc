import Foundation
import GatewayCore

/// Shared fixtures: the repository's catalogue and a small in-memory gateway configuration.
enum Fixtures {
    /// The repository root, found from this file's path.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The real catalogue file.
    static let catalogue: OperationCatalogue = {
        let text = try! String(contentsOf: repositoryRoot.appendingPathComponent("config/catalogue/operations.tsv"), encoding: .utf8)
        return try! OperationCatalogue(tsv: text)
    }()

    static let testKey = Secret("klarna_test_api_" + String(repeating: "A", count: 40))
    static let liveKey = Secret("klarna_live_api_" + String(repeating: "B", count: 40))
    static let merchantOwnKey = Secret("klarna_test_api_" + String(repeating: "C", count: 40))

    static func partner(_ id: String, environment: KlarnaEnvironment = .test, baseURL: String = "https://api-global.test.klarna.com", key: Secret = testKey) -> PartnerState {
        PartnerState(
            record: PartnerRecord(
                id: id, environment: environment, baseURL: baseURL, apiKey: CredentialRef(id: "partner:\(id):api-key", version: 1),
                clientCertificatePEM: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                clientKey: CredentialRef(id: "partner:\(id):client-key", version: 1)
            ),
            apiKey: key, clientKeyPEM: Secret("key"), certificateFingerprint: String(repeating: "ab", count: 32)
        )!
    }

    static func merchant(_ id: String, partner: String = "acq", account: String, groups: [String] = [], status: MerchantStatus = .active, ownKey: Secret? = nil) -> MerchantState {
        MerchantState(
            record: MerchantRecord(
                id: id, partnerID: partner, account: AccountKRN(account)!, groups: groups, status: status,
                apiKey: ownKey == nil ? nil : CredentialRef(id: "merchant:\(id):api-key", version: 1)
            ),
            ownKey: ownKey, form: .rawKey
        )
    }

    /// Caller tokens by caller id, generated fresh.
    static let tokens: [String: CallerToken] = ["checkout": .generate(), "orders": .generate(), "ops": .generate(), "bound": .generate(), "everything": .generate()]
    static let boundFingerprint = String(repeating: "cd", count: 32)
    static let certOnlyFingerprint = String(repeating: "ef", count: 32)

    static func snapshot(
        partners: [PartnerState]? = nil, merchants: [MerchantState]? = nil, egress: [EgressRule] = [], forwardUnknown: Bool = false,
        rateLimits: RateLimitPolicy = .klarnaDefaults, revoked: Set<String> = []
    ) -> GatewaySnapshot {
        let listed = [
            CallerRecord(id: "checkout", tokenID: tokens["checkout"]!.id, tokenHash: tokens["checkout"]!.secretHash, certificateFingerprint: nil),
            CallerRecord(id: "orders", tokenID: tokens["orders"]!.id, tokenHash: tokens["orders"]!.secretHash, certificateFingerprint: nil),
            CallerRecord(id: "ops", tokenID: tokens["ops"]!.id, tokenHash: tokens["ops"]!.secretHash, certificateFingerprint: nil, status: .revoked),
            CallerRecord(id: "bound", tokenID: tokens["bound"]!.id, tokenHash: tokens["bound"]!.secretHash, certificateFingerprint: boundFingerprint),
            CallerRecord(id: "robot", tokenID: nil, tokenHash: nil, certificateFingerprint: certOnlyFingerprint),
            CallerRecord(id: "everything", tokenID: tokens["everything"]!.id, tokenHash: tokens["everything"]!.secretHash, certificateFingerprint: nil),
        ]
        let callers = listed.map { caller in
            guard revoked.contains(caller.id) else { return caller }
            return CallerRecord(
                id: caller.id, tokenID: caller.tokenID, tokenHash: caller.tokenHash, certificateFingerprint: caller.certificateFingerprint,
                status: .revoked)
        }
        let access = AccessPolicy(callers: [
            "checkout": Grant(merchants: ["m1", "group:eu"], partners: ["acq"], families: ["payment-request", "payment-transaction", "webhooks"]),
            "orders": Grant(merchants: ["partner:acq"], families: ["payment-transaction"]),
            "ops": Grant(merchants: ["*"], partners: ["*"], families: ["*"]),
            "bound": Grant(merchants: ["*"], families: ["*"]),
            "robot": Grant(merchants: ["m1"], families: ["payment-transaction"]),
            "everything": Grant(merchants: ["*"], partners: ["*"], families: ["*"]),
        ])
        return GatewaySnapshot(
            partners: partners ?? [partner("acq"), partner("acq_live", environment: .live, baseURL: "https://api-global.klarna.com", key: liveKey)],
            merchants: merchants ?? [
                merchant("m1", account: "krn:partner:global:account:test:M1"),
                merchant("m2", account: "krn:partner:global:account:test:M2", groups: ["eu"], ownKey: merchantOwnKey),
                merchant("m3", account: "krn:partner:global:account:test:M3"),
                merchant("m4", account: "krn:partner:global:account:test:M4", groups: ["eu"], status: .suspended),
                merchant("m_live", partner: "acq_live", account: "krn:partner:global:account:live:L1"),
            ],
            callers: callers, access: access, catalogue: catalogue,
            settings: PipelineSettings(egress: egress, integrationMetadata: "{\"integrator\":{\"name\":\"acq\"}}", forwardUnknownOperations: forwardUnknown),
            rateLimits: rateLimits, version: 1
        )
    }

    static func bearer(_ caller: String) -> (String, String) {
        ("Authorization", "Bearer " + tokens[caller]!.rendered.exposedValue)
    }
}
