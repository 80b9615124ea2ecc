import Crypto
import GatewayCore

/// The master keys, by version: the newest seals, every version still opens what it sealed.
///
/// Text form (a file or an environment variable), one version per line, `#` comments and blank lines ignored:
///
///     # klarna-gateway master key ring
///     v1 q8s0...base64 of 32 random bytes...=
///     v2 Zk3L...=
///
/// The highest version is the current one. Versions are never removed by the gateway, so ciphertexts sealed
/// under an old version stay readable until `keys rotate` re-seals them.
public struct MasterKeyRing: Sendable {
    /// The 256-bit keys by version.
    public let keys: [Int: SymmetricKey]
    /// The version new secrets are sealed under (the highest).
    public let currentVersion: Int

    /// Makes a ring from keys; the current version is the highest.
    public init(keys: [Int: SymmetricKey]) {
        precondition(!keys.isEmpty, "a key ring holds at least one key")
        self.keys = keys
        self.currentVersion = keys.keys.max()!
    }

    /// A new ring with one random key, version 1.
    public static func generate() -> MasterKeyRing {
        MasterKeyRing(keys: [1: SymmetricKey(size: .bits256)])
    }

    /// This ring plus a new random key one version above the current; the new key becomes current.
    public func addingNewVersion() -> MasterKeyRing {
        var keys = self.keys
        keys[currentVersion + 1] = SymmetricKey(size: .bits256)
        return MasterKeyRing(keys: keys)
    }

    /// The key for a version.
    public func key(version: Int) -> SymmetricKey? { keys[version] }

    /// Every version, oldest first.
    public var versions: [Int] { keys.keys.sorted() }

    /// Parses the text form; `source` names the file or variable in errors.
    public init(parsing text: String, source: String) throws {
        var keys: [Int: SymmetricKey] = [:]
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count == 2, fields[0].hasPrefix("v"), let version = Int(fields[0].dropFirst()), version > 0 else {
                throw VaultError.malformedKeyRing(source: source, line: index + 1, reason: "expected `v<N> <base64 of 32 bytes>`")
            }
            guard let bytes = Base64.decode(fields[1]), bytes.count == 32 else {
                throw VaultError.malformedKeyRing(source: source, line: index + 1, reason: "the key of v\(version) is not base64 of 32 bytes")
            }
            guard keys[version] == nil else {
                throw VaultError.malformedKeyRing(source: source, line: index + 1, reason: "v\(version) appears twice")
            }
            keys[version] = SymmetricKey(data: bytes)
        }
        guard !keys.isEmpty else {
            throw VaultError.malformedKeyRing(source: source, line: 0, reason: "no key found")
        }
        self.init(keys: keys)
    }

    /// The text form, wrapped so that it cannot be printed by mistake.
    public var rendered: Secret {
        var text = "# klarna-gateway master key ring: keep this file mode 0600, and never delete a version still in use\n"
        for version in versions {
            let bytes = keys[version]!.withUnsafeBytes { Array($0) }
            text += "v\(version) \(Base64.encode(bytes))\n"
        }
        return Secret(text)
    }
}

extension Substring {
    /// The substring without leading and trailing spaces, tabs and carriage returns.
    func trimmingWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return self[endIndex...] }
        let end = lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}
