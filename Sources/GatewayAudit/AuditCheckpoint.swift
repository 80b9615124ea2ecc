import Crypto
import Foundation
import GatewayCore

/// A signed statement that the trail of `nodeID` had `hash` at `seq`: what makes a rewritten chain detectable.
public struct AuditCheckpoint: Sendable, Equatable {
    /// The node whose trail this is.
    public var nodeID: String
    /// The sequence number of the last record covered.
    public var seq: Int64
    /// When it was made, microseconds since the Unix epoch, UTC.
    public var timeMicros: Int64
    /// The chain hash of record `seq`, hex.
    public var hash: String
    /// Which signing key made it.
    public var keyID: String
    /// The signer's Ed25519 public key, hex (informational: trust comes from the keys given to the verifier).
    public var publicKey: String
    /// Ed25519 signature over `signedMessage`, hex.
    public var signature: String

    /// Makes a checkpoint from its parts.
    public init(nodeID: String, seq: Int64, timeMicros: Int64, hash: String, keyID: String, publicKey: String, signature: String) {
        self.nodeID = nodeID
        self.seq = seq
        self.timeMicros = timeMicros
        self.hash = hash
        self.keyID = keyID
        self.publicKey = publicKey
        self.signature = signature
    }

    /// The bytes signed: a domain-separation line, then the canonical JSON of (node_id, seq, time_us, hash).
    public static func signedMessage(nodeID: String, seq: Int64, timeMicros: Int64, hash: String) -> [UInt8] {
        let text = "klarna-gateway-audit-checkpoint-v1\n"
            + "{\"node_id\":\(JSONText.quote(nodeID)),\"seq\":\(seq),\"time_us\":\(timeMicros),\"hash\":\(JSONText.quote(hash))}"
        return Array(text.utf8)
    }

    /// True when `signature` is a valid signature of this checkpoint by `key`.
    public func isSigned(by key: Curve25519.Signing.PublicKey) -> Bool {
        guard let signatureBytes = Hex.decode(signature) else { return false }
        let message = Self.signedMessage(nodeID: nodeID, seq: seq, timeMicros: timeMicros, hash: hash)
        return key.isValidSignature(signatureBytes, for: message)
    }

    /// One line of the checkpoint file: JSON with a fixed key order, no trailing newline.
    public var jsonLine: String {
        "{\"v\":1,\"node_id\":\(JSONText.quote(nodeID)),\"seq\":\(seq),\"time_us\":\(timeMicros),"
            + "\"hash\":\(JSONText.quote(hash)),\"key_id\":\(JSONText.quote(keyID)),"
            + "\"public_key\":\(JSONText.quote(publicKey)),\"signature\":\(JSONText.quote(signature))}"
    }

    /// Parses a checkpoint-file line (or an archive's trailing `{"checkpoint":…}` line); nil when it is not one.
    public init?(jsonLine line: Substring) {
        guard let data = line.data(using: .utf8),
            var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return nil }
        if let nested = object["checkpoint"] as? [String: Any] { object = nested }
        guard let nodeID = object["node_id"] as? String, let seq = (object["seq"] as? NSNumber)?.int64Value,
            let time = (object["time_us"] as? NSNumber)?.int64Value, let hash = object["hash"] as? String,
            let keyID = object["key_id"] as? String, let signature = object["signature"] as? String
        else { return nil }
        self.init(
            nodeID: nodeID, seq: seq, timeMicros: time, hash: hash, keyID: keyID,
            publicKey: object["public_key"] as? String ?? "", signature: signature
        )
    }

    /// Reads every checkpoint line of a file, skipping lines that are not checkpoints, streaming line by line.
    public static func readFile(_ url: URL) throws -> [AuditCheckpoint] {
        var result: [AuditCheckpoint] = []
        try LineReader.forEachLine(of: url) { line in
            if let checkpoint = AuditCheckpoint(jsonLine: line) { result.append(checkpoint) }
        }
        return result
    }
}

/// Signs checkpoints with an Ed25519 key the App keeps sealed like the other secrets.
public struct AuditSigner: Sendable {
    /// Names the key in checkpoints, so verifiers can pick the right public key after a rotation.
    public let keyID: String
    private let key: Curve25519.Signing.PrivateKey

    /// Wraps a private key and its id.
    public init(privateKey: Curve25519.Signing.PrivateKey, keyID: String) {
        self.key = privateKey
        self.keyID = keyID
    }

    /// The public half, for verifiers.
    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    /// The public half as hex, as checkpoints and `--public-key` carry it.
    public var publicKeyHex: String { Hex.encode(key.publicKey.rawRepresentation) }

    /// Signs (node, seq, time, hash).
    public func checkpoint(nodeID: String, seq: Int64, timeMicros: Int64, hash: String) throws -> AuditCheckpoint {
        let message = AuditCheckpoint.signedMessage(nodeID: nodeID, seq: seq, timeMicros: timeMicros, hash: hash)
        let signature = try key.signature(for: message)
        return AuditCheckpoint(
            nodeID: nodeID, seq: seq, timeMicros: timeMicros, hash: hash, keyID: keyID, publicKey: publicKeyHex,
            signature: Hex.encode(signature)
        )
    }
}
