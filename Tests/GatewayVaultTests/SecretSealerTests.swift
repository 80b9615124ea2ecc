import GatewayCore
import GatewayVault
import Testing

@Suite struct SecretSealerTests {
    let sealer = SecretSealer(ring: .generate())
    let credential = CredentialRef(id: "partner:acq_test:api-key", version: 1)
    let secret = Secret("klarna_test_api_VAULTSECRET_0123456789")

    @Test func roundTrip() throws {
        let sealed = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        #expect(sealed.keyVersion == 1)
        #expect(!String(decoding: sealed.combined, as: UTF8.self).contains("VAULTSECRET"))
        #expect(try sealer.open(sealed) == secret)
    }

    @Test func sealingTwiceGivesDifferentCiphertexts() throws {
        let first = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        let second = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        #expect(first.combined != second.combined)
    }

    @Test func movedCiphertextDoesNotOpen() throws {
        let sealed = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        let moves: [(owner: String, credentialID: String, version: Int)] = [
            ("partner:other", "partner:acq_test:api-key", 1),
            ("partner:acq_test", "partner:acq_test:client-key", 1),
            ("partner:acq_test", "partner:acq_test:api-key", 2),
        ]
        for move in moves {
            var moved = sealed
            moved.owner = move.owner
            moved.credential = CredentialRef(id: move.credentialID, version: move.version)
            #expect(throws: VaultError.openFailed(owner: move.owner, credential: moved.credential, keyVersion: 1)) {
                try sealer.open(moved)
            }
        }
    }

    @Test func tamperedCiphertextDoesNotOpen() throws {
        var sealed = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        for index in [0, 12, sealed.combined.count - 1] {
            var tampered = sealed
            tampered.combined[index] ^= 0x01
            #expect(throws: VaultError.self) { try sealer.open(tampered) }
        }
        sealed.combined.removeLast()
        #expect(throws: VaultError.self) { try sealer.open(sealed) }
    }

    @Test func errorNamesTheCredentialButNotTheSecret() throws {
        var sealed = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        sealed.combined[20] ^= 0xFF
        do {
            _ = try sealer.open(sealed)
            Issue.record("tampered secret opened")
        } catch {
            let message = "\(error)"
            #expect(message.contains("partner:acq_test:api-key@v1"))
            #expect(!message.contains("VAULTSECRET"))
        }
    }

    @Test func wrongMasterKeyDoesNotOpen() throws {
        let sealed = try sealer.seal(secret, owner: "partner:acq_test", credential: credential)
        let stranger = SecretSealer(ring: .generate())
        #expect(throws: VaultError.self) { try stranger.open(sealed) }
    }

    @Test func rotationKeepsOldCiphertextsReadableAndReseals() throws {
        let old = try sealer.seal(secret, owner: "merchant:m_1", credential: credential)
        let rotated = SecretSealer(ring: sealer.ring.addingNewVersion())
        #expect(rotated.ring.currentVersion == 2)
        #expect(rotated.ring.versions == [1, 2])
        #expect(try rotated.open(old) == secret)

        let resealed = try rotated.reseal(old)
        #expect(resealed.keyVersion == 2)
        #expect(resealed.combined != old.combined)
        #expect(try rotated.open(resealed) == secret)
        #expect(throws: VaultError.unknownKeyVersion(owner: "merchant:m_1", credential: credential, keyVersion: 2)) {
            try sealer.open(resealed)
        }
        #expect(try rotated.seal(secret, owner: "merchant:m_1", credential: credential).keyVersion == 2)
    }
}
