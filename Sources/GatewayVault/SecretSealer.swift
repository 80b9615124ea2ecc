import Crypto
import Foundation
import GatewayCore

/// Seals and opens secrets with AES-256-GCM under per-owner keys derived from the master key ring.
///
/// Key: HKDF-SHA256(master key vN, salt `SecretSealer.salt`, info `klarna-gateway/owner/` + owner), 32 bytes.
/// Associated data: `klarna-gateway/sealed/v1` NUL owner NUL credential id NUL credential version, so a ciphertext
/// copied to another owner, credential or version fails authentication instead of opening as the wrong secret.
public struct SecretSealer: Sendable {
    /// The master keys.
    public let ring: MasterKeyRing

    /// A fixed, public salt: it separates these keys from any other use of the master key, it is not a secret.
    public static let salt: [UInt8] = Array("klarna-gateway/secret-sealing/v1".utf8)

    /// Makes a sealer over a key ring.
    public init(ring: MasterKeyRing) { self.ring = ring }

    /// Seals a secret for its owner and credential under the current master key version.
    public func seal(_ secret: Secret, owner: String, credential: CredentialRef) throws -> SealedSecret {
        let version = ring.currentVersion
        let key = derivedKey(master: ring.key(version: version)!, owner: owner)
        let box = try AES.GCM.seal(
            Array(secret.exposedValue.utf8), using: key,
            authenticating: SecretSealer.associatedData(owner: owner, credential: credential)
        )
        // The combined form is nonce ‖ ciphertext ‖ tag; it is always present for the default 12-byte nonce.
        return SealedSecret(owner: owner, credential: credential, keyVersion: version, combined: Array(box.combined!))
    }

    /// Opens a sealed secret; the error names the credential, never the material.
    public func open(_ sealed: SealedSecret) throws -> Secret {
        guard let master = ring.key(version: sealed.keyVersion) else {
            throw VaultError.unknownKeyVersion(owner: sealed.owner, credential: sealed.credential, keyVersion: sealed.keyVersion)
        }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.combined)
            plaintext = try AES.GCM.open(
                box, using: derivedKey(master: master, owner: sealed.owner),
                authenticating: SecretSealer.associatedData(owner: sealed.owner, credential: sealed.credential)
            )
        } catch {
            throw VaultError.openFailed(owner: sealed.owner, credential: sealed.credential, keyVersion: sealed.keyVersion)
        }
        guard let text = String(validating: plaintext, as: UTF8.self) else {
            throw VaultError.notText(owner: sealed.owner, credential: sealed.credential)
        }
        return Secret(text)
    }

    /// The same secret sealed under the current master key version (unchanged when it already is).
    public func reseal(_ sealed: SealedSecret) throws -> SealedSecret {
        if sealed.keyVersion == ring.currentVersion { return sealed }
        return try seal(open(sealed), owner: sealed.owner, credential: sealed.credential)
    }

    private func derivedKey(master: SymmetricKey, owner: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: master, salt: SecretSealer.salt, info: Array("klarna-gateway/owner/\(owner)".utf8),
            outputByteCount: 32
        )
    }

    /// The bytes authenticated with every ciphertext; NUL-separated because ids never contain NUL.
    static func associatedData(owner: String, credential: CredentialRef) -> [UInt8] {
        Array("klarna-gateway/sealed/v1\u{0}\(owner)\u{0}\(credential.id)\u{0}\(credential.version)".utf8)
    }
}
