import Crypto
import Foundation
import SwiftASN1
import X509

/// The simulator's certificate authority: makes the demo PKI (`klarna-simulator init`) and signs partners' CSRs
/// the way Klarna's credentials API does. Lives here, not in test support, because the CLI uses it.
public struct SimulatorPKI: Sendable {
    /// A certificate with its key, PEM.
    public struct Identity: Sendable {
        /// Certificate, PEM.
        public let certificatePEM: String
        /// Private key, PEM (PKCS#8).
        public let privateKeyPEM: String
    }

    /// The CA certificate.
    public let certificate: Certificate
    /// The CA key.
    let key: Certificate.PrivateKey
    /// The signature algorithm that fits the key.
    let algorithm: Certificate.SignatureAlgorithm

    /// Makes a fresh P-256 CA.
    public static func makeCA(name: String = "klarna-simulator CA") throws -> (pki: SimulatorPKI, keyPEM: String) {
        let key = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86400 * 365, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key)
        )
        return (SimulatorPKI(certificate: certificate, key: .init(key), algorithm: .ecdsaWithSHA256), key.pemRepresentation)
    }

    /// Loads a CA from PEM certificate and key (P-256, P-384 or RSA keys).
    public init(certificatePEM: String, keyPEM: String) throws {
        certificate = try Certificate(pemEncoded: certificatePEM)
        key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        if (try? P256.Signing.PrivateKey(pemRepresentation: keyPEM)) != nil {
            algorithm = .ecdsaWithSHA256
        } else if (try? P384.Signing.PrivateKey(pemRepresentation: keyPEM)) != nil {
            algorithm = .ecdsaWithSHA384
        } else {
            algorithm = .sha256WithRSAEncryption
        }
    }

    init(certificate: Certificate, key: Certificate.PrivateKey, algorithm: Certificate.SignatureAlgorithm) {
        self.certificate = certificate
        self.key = key
        self.algorithm = algorithm
    }

    /// The CA certificate, PEM.
    public var certificatePEM: String { (try? certificate.serializeAsPEM().pemString) ?? "" }

    /// Issues a server certificate for localhost and 127.0.0.1.
    public func issueServer(dnsNames: [String] = ["localhost"]) throws -> Identity {
        try issue(commonName: dnsNames.first ?? "localhost", usage: .serverAuth, dnsNames: dnsNames, ipv4: [127, 0, 0, 1])
    }

    /// Issues a client certificate (an acquirer's mTLS identity).
    public func issueClient(commonName: String) throws -> Identity {
        try issue(commonName: commonName, usage: .clientAuth, dnsNames: [], ipv4: nil)
    }

    private func issue(commonName: String, usage: ExtendedKeyUsage.Usage, dnsNames: [String], ipv4: [UInt8]?) throws -> Identity {
        let newKey = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(commonName) }
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        if let ipv4 { names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(ipv4)))) }
        let issued = try sign(subject: subject, publicKey: .init(newKey.publicKey), usage: usage, names: names, days: 365)
        return Identity(certificatePEM: try issued.serializeAsPEM().pemString, privateKeyPEM: newKey.pemRepresentation)
    }

    /// Why a CSR was refused.
    public struct CSRError: Error, Sendable, CustomStringConvertible {
        /// What is wrong.
        public let description: String
    }

    /// Signs a PEM CSR for client authentication, as Klarna does for `config.usage: MTLS`; the CSR's own signature
    /// must verify, so a partner cannot obtain a certificate for a key it does not hold.
    public func sign(csrPEM: String, days: Int = 365) throws -> Certificate {
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(pemEncoded: csrPEM) } catch {
            throw CSRError(description: "not a PEM certificate signing request")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw CSRError(description: "the CSR's signature does not verify")
        }
        return try sign(subject: csr.subject, publicKey: csr.publicKey, usage: .clientAuth, names: [], days: days)
    }

    private func sign(subject: DistinguishedName, publicKey: Certificate.PublicKey, usage: ExtendedKeyUsage.Usage, names: [GeneralName], days: Int) throws -> Certificate {
        let now = Date()
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now - 3600, notValidAfter: now + Double(days) * 86400, issuer: certificate.subject, subject: subject,
            signatureAlgorithm: algorithm,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                if !names.isEmpty { SubjectAlternativeNames(names) }
            },
            issuerPrivateKey: key
        )
    }

    /// Lowercase hex SHA-256 of DER bytes.
    public static func fingerprint(der: [UInt8]) -> String {
        SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
    }

    /// Lowercase hex SHA-256 of a certificate's DER.
    public static func fingerprint(of certificate: Certificate) throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return fingerprint(der: serializer.serializedBytes)
    }

    /// Makes a CSR for a fresh P-256 key (tests and the demo use it to exercise rotation).
    public static func makeCSR(commonName: String) throws -> (csrPEM: String, keyPEM: String) {
        let newKey = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(commonName) }, privateKey: .init(newKey),
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256
        )
        return (try csr.serializeAsPEM().pemString, newKey.pemRepresentation)
    }
}
