import Crypto
import Foundation
import SwiftASN1
import X509

/// A throwaway certificate authority for tests: real P-256 keys and X.509 certificates, made in memory.
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

    /// The CA certificate, PEM.
    public let caCertificatePEM: String
    /// The CA's name, for issuing.
    let caName: DistinguishedName
    /// The CA's key, for issuing.
    let caKey: P256.Signing.PrivateKey

    /// Makes a new CA named `name`.
    public init(name: String = "klarna-gateway test CA") throws {
        let key = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86400 * 7, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key)
        )
        self.caCertificatePEM = try certificate.serializeAsPEM().pemString
        self.caName = caName
        self.caKey = key
    }

    /// Issues a server certificate for `localhost` and 127.0.0.1 (and any extra DNS names).
    public func issueServer(commonName: String = "localhost", dnsNames: [String] = []) throws -> Identity {
        try issue(commonName: commonName, usage: .serverAuth, dnsNames: ["localhost"] + dnsNames, ipv4: [127, 0, 0, 1])
    }

    /// Issues a client certificate (the acquirer's mTLS identity, or an internal caller's).
    public func issueClient(commonName: String) throws -> Identity {
        try issue(commonName: commonName, usage: .clientAuth, dnsNames: [], ipv4: nil)
    }

    private func issue(commonName: String, usage: ExtendedKeyUsage.Usage, dnsNames: [String], ipv4: [UInt8]?) throws -> Identity {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        if let ipv4 { names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(ipv4)))) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86400 * 7, issuer: caName, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                if !names.isEmpty { SubjectAlternativeNames(names) }
            },
            issuerPrivateKey: .init(caKey)
        )
        return Identity(
            certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation,
            fingerprint: try TestPKI.fingerprint(of: certificate), commonName: commonName
        )
    }

    /// Lowercase hex SHA-256 of a certificate's DER encoding.
    public static func fingerprint(of certificate: Certificate) throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02x", $0) }.joined()
    }

    /// Writes the CA and identities as files into `directory` (for child processes that read PEM files).
    public func write(_ identity: Identity, to directory: URL, name: String) throws -> (certificate: URL, key: URL) {
        let certificate = directory.appendingPathComponent("\(name).pem")
        let key = directory.appendingPathComponent("\(name).key")
        try identity.certificatePEM.write(to: certificate, atomically: true, encoding: .utf8)
        try identity.privateKeyPEM.write(to: key, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)
        return (certificate, key)
    }
}
