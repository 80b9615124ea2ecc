import Crypto
import Foundation
import GatewayCore
import SwiftASN1
import X509

/// A partner's mTLS client certificate chain as stored: the PEM, parsed once to check it and fingerprint it.
public struct ClientCertificate: Sendable {
    /// The chain as given, leaf first.
    public let chainPEM: String
    /// The leaf certificate.
    public let leaf: Certificate
    /// Lowercase hex SHA-256 of the leaf's DER: the id pools and listings use.
    public let fingerprint: String

    /// Parses a PEM chain; the first certificate is the leaf.
    public init(pem: String) throws {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw AdminError("the client certificate is not PEM")
        }
        guard let first = documents.first(where: { $0.discriminator == "CERTIFICATE" }) else {
            throw AdminError("the client certificate file holds no CERTIFICATE block")
        }
        do {
            leaf = try Certificate(derEncoded: first.derBytes)
        } catch {
            throw AdminError("the client certificate does not parse as X.509: \(error)")
        }
        chainPEM = pem
        fingerprint = Hex.encode(SHA256.hash(data: first.derBytes))
    }

    /// Checks that `privateKeyPEM` is the P-256 key of the leaf; the message never quotes the key.
    public func checkPrivateKey(_ privateKeyPEM: Secret) throws {
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM.exposedValue)
        } catch {
            throw AdminError("the client key is not a PEM EC P-256 private key (Klarna issues mTLS certificates for P-256 keys)")
        }
        guard Certificate.PublicKey(key.publicKey) == leaf.publicKey else {
            throw AdminError("the client key does not match the client certificate (subject \(leaf.subject), fingerprint \(fingerprint))")
        }
    }

    /// Refuses a leaf that is expired or not yet valid: Klarna would refuse it at the handshake, so an operator
    /// learns it now rather than from failing calls.
    public func checkValidity(at now: Date = Date()) throws {
        if now > leaf.notValidAfter {
            throw AdminError("the client certificate (fingerprint \(fingerprint)) expired on \(leaf.notValidAfter)")
        }
        if now < leaf.notValidBefore {
            throw AdminError("the client certificate (fingerprint \(fingerprint)) is not valid before \(leaf.notValidBefore)")
        }
    }

    /// The last moment the leaf is valid.
    public var notValidAfter: Date { leaf.notValidAfter }
}
