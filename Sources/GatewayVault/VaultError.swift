import GatewayCore

/// Why the vault refused: a key ring that cannot be trusted or read, or a sealed secret that does not open.
///
/// Messages name files, owners and credentials but never contain key material or secrets.
public enum VaultError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The key-ring file may be read or written by group or others.
    case keyFileTooOpen(path: String, mode: UInt16)
    /// The key-ring file is missing or unreadable.
    case keyFileUnreadable(path: String, reason: String)
    /// The key-ring file already exists and would be overwritten.
    case keyFileExists(path: String)
    /// The key-ring file could not be written.
    case keyFileUnwritable(path: String, reason: String)
    /// The environment variable that should hold the key ring is unset or empty.
    case environmentVariableMissing(name: String)
    /// The key-ring text is malformed (line number, reason).
    case malformedKeyRing(source: String, line: Int, reason: String)
    /// A sealed secret names a master key version the ring does not hold.
    case unknownKeyVersion(owner: String, credential: CredentialRef, keyVersion: Int)
    /// Authentication failed: wrong master key, altered ciphertext, or a ciphertext moved to another row.
    case openFailed(owner: String, credential: CredentialRef, keyVersion: Int)
    /// The opened plaintext is not UTF-8 text.
    case notText(owner: String, credential: CredentialRef)

    /// A readable reason, with the fix where there is one.
    public var description: String {
        switch self {
        case .keyFileTooOpen(let path, let mode):
            "master key file \(path) is accessible by group or others (mode \(String(mode, radix: 8))); "
                + "refusing to use it: run `chmod 600 \(path)`"
        case .keyFileUnreadable(let path, let reason):
            "cannot read master key file \(path): \(reason)"
        case .keyFileExists(let path):
            "master key file \(path) already exists; refusing to overwrite it (use `keys rotate` to add a version)"
        case .keyFileUnwritable(let path, let reason):
            "cannot write master key file \(path): \(reason)"
        case .environmentVariableMissing(let name):
            "environment variable \(name) holding the master key ring is unset or empty"
        case .malformedKeyRing(let source, let line, let reason):
            "\(source): line \(line): \(reason)"
        case .unknownKeyVersion(let owner, let credential, let keyVersion):
            "secret \(credential) of \(owner) is sealed under master key v\(keyVersion), which the key ring does not hold"
        case .openFailed(let owner, let credential, let keyVersion):
            "secret \(credential) of \(owner) does not open under master key v\(keyVersion) "
                + "(wrong master key, or the stored ciphertext was altered or copied from another row)"
        case .notText(let owner, let credential):
            "secret \(credential) of \(owner) opened but is not UTF-8 text"
        }
    }
}
