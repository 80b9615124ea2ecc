import Foundation
import KlarnaSimulator
import X509

/// A throwaway certificate authority for tests (internal callers' CA, the gateway's server certificate), made
/// with the same code as the simulator's PKI, plus the fingerprints and files tests need.
public struct TestPKI: Sendable {
    /// A certificate with its private key, in PEM, plus its SHA-256 fingerprint.
    public struct Identity: Sendable {
        /// The certificate, PEM.
        public let certificatePEM: String
        /// The private key, PEM (PKCS#8).
        public let privateKeyPEM: String
        /// Lowercase hex SHA-256 of the certificate's DER.
        public let fingerprint: String
        /// The subject's common name.
        public let commonName: String
    }

    private let authority: SimulatorPKI

    /// The CA certificate, PEM.
    public var caCertificatePEM: String { authority.certificatePEM }

    /// Makes a new CA named `name`.
    public init(name: String = "klarna-gateway test CA") throws {
        authority = try SimulatorPKI.makeCA(name: name).pki
    }

    /// Issues a server certificate for `localhost` and 127.0.0.1 (and any extra DNS names).
    public func issueServer(commonName: String = "localhost", dnsNames: [String] = []) throws -> Identity {
        try identity(authority.issueServer(dnsNames: ["localhost"] + dnsNames), commonName: commonName)
    }

    /// Issues a client certificate (the acquirer's mTLS identity, or an internal caller's).
    public func issueClient(commonName: String) throws -> Identity {
        try identity(authority.issueClient(commonName: commonName), commonName: commonName)
    }

    private func identity(_ issued: SimulatorPKI.Identity, commonName: String) throws -> Identity {
        Identity(
            certificatePEM: issued.certificatePEM, privateKeyPEM: issued.privateKeyPEM,
            fingerprint: try SimulatorPKI.fingerprint(of: Certificate(pemEncoded: issued.certificatePEM)), commonName: commonName)
    }

    /// Writes an identity as `name.pem` and `name.key` (0600) into `directory`, for processes that read files.
    public func write(_ identity: Identity, to directory: URL, name: String) throws -> (certificate: URL, key: URL) {
        let certificate = directory.appendingPathComponent("\(name).pem")
        let key = directory.appendingPathComponent("\(name).key")
        try identity.certificatePEM.write(to: certificate, atomically: true, encoding: .utf8)
        try identity.privateKeyPEM.write(to: key, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)
        return (certificate, key)
    }
}

/// The part of a P-256 private key's PEM that is secret, for tests that search outputs for a leaked key: 40 base64
/// characters of the private scalar. The body's first 48 characters are the PKCS#8 header every P-256 key shares,
/// so a search for them would find any key, or none of this one.
public func secretPart(ofPrivateKeyPEM pem: String) -> String {
    let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    precondition(body.hasPrefix(pkcs8P256Header), "not a PKCS#8 P-256 key: the secret part would be guessed")
    return String(body.dropFirst(pkcs8P256Header.count).prefix(40))
}

/// The base64 of the PKCS#8 structure before a P-256 key's private scalar (version, algorithm, curve, lengths).
private let pkcs8P256Header = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
