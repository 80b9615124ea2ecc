import Crypto
import GatewayAudit
import GatewayCore
import GatewayVault

/// The Ed25519 key that signs audit checkpoints, kept like every other secret: sealed in the store under the
/// master key, opened only in memory.
public enum AuditSigningKey {
    static let owner = "gateway"
    static let credentialID = "gateway:audit-signing-key"

    /// The stored key, or a new one sealed and saved on first use.
    public static func loadOrCreate(store: any GatewayStore, sealer: SecretSealer) async throws -> AuditSigner {
        let existing = try await store.sealedSecrets()
            .filter { $0.owner == owner && $0.credential.id == credentialID }
            .max { $0.credential.version < $1.credential.version }
        if let existing {
            let opened = try sealer.open(existing)
            guard let raw = Hex.decode(opened.exposedValue) else { throw AdminError("the audit signing key in the store is malformed") }
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
            return AuditSigner(privateKey: key, keyID: existing.credential.description)
        }
        let key = Curve25519.Signing.PrivateKey()
        let credential = CredentialRef(id: credentialID, version: 1)
        let sealed = try sealer.seal(Secret(Hex.encode(key.rawRepresentation)), owner: owner, credential: credential)
        try await store.saveSecrets([sealed])
        return AuditSigner(privateKey: key, keyID: credential.description)
    }
}
