import GatewayCore
import GatewayVault

extension AdminService {
    /// Creates a new key-ring file (mode 0600) with one random key; refuses to overwrite an existing file.
    @discardableResult
    public static func initializeKeyRing(config: GatewayConfig) throws -> String {
        guard let path = config.masterKeyFilePath else {
            throw AdminError("master_key.file is not set in the config; `keys init` writes a key-ring file")
        }
        try MasterKeyRing.generate().write(to: path, overwrite: false)
        return path
    }

    /// Appends a new master key version to the key-ring file, then re-seals every secret under it in one
    /// transaction. Returns the new version and how many secrets were re-sealed.
    ///
    /// The file is written first: if re-sealing then fails, the ring merely holds an unused version and every
    /// ciphertext still opens; the reverse order could leave secrets sealed under a key that was never saved.
    public func rotateMasterKey() async throws -> (version: Int, resealed: Int) {
        guard case .file(let path) = keyOrigin else {
            throw AdminError(
                "the master key ring was loaded from \(keyOrigin?.description ?? "memory"); "
                    + "`keys rotate` rotates a key-ring file (unset the variable, or rotate the variable's ring by hand)")
        }
        // Read the file again rather than trusting the ring in memory, so a concurrent rotation is not lost.
        let ring = try MasterKeyRing.load(file: path).addingNewVersion()
        try ring.write(to: path, overwrite: true)
        let rotated = SecretSealer(ring: ring)
        // A pair, not the bare count, so that a rotation with no secret to re-seal is logged too: the ring changed.
        let (count, _) = try await changing("keys.rotate", "master key version \(ring.currentVersion)") {
            (try await store.resealAllSecrets { try rotated.reseal($0) }, ring.currentVersion)
        }
        return (ring.currentVersion, count)
    }
}
