import GatewayCore

/// The admin API's resources as JSON. Only what is listed here leaves: ids, states, references to credentials
/// (id and version) and certificate fingerprints, never a key, a token, a hash of one or a private key.
enum AdminJSON {
    /// A merchant, with its entity tag.
    static func merchant(_ record: MerchantRecord) -> JSONValue {
        .object([
            ("id", .string(record.id)),
            ("partner_id", .string(record.partnerID)),
            ("account", .string(record.account.rawValue)),
            ("environment", .string(record.account.environment.rawValue)),
            ("groups", .array(record.groups.map(JSONValue.string))),
            ("status", .string(record.status.rawValue)),
            ("release", record.release.map(JSONValue.string) ?? .null),
            ("own_api_key", credential(record.apiKey)),
            ("etag", .string(record.etag)),
        ])
    }

    /// A caller: whether it has a token, never the token or its id.
    static func caller(_ record: CallerRecord) -> JSONValue {
        .object([
            ("id", .string(record.id)),
            ("status", .string(record.status.rawValue)),
            ("token", .bool(record.tokenHash != nil)),
            ("certificate_fingerprint", record.certificateFingerprint.map(JSONValue.string) ?? .null),
        ])
    }

    /// A partner: its credentials by reference and its certificate by fingerprint.
    static func partner(_ record: PartnerRecord) -> JSONValue {
        .object([
            ("id", .string(record.id)),
            ("environment", .string(record.environment.rawValue)),
            ("base_url", .string(record.baseURL)),
            ("auth_form", .string(record.authForm.rawValue)),
            ("api_key", credential(record.apiKey)),
            ("client_key", credential(record.clientKey)),
            ("client_certificate_fingerprint", (try? ClientCertificate(pem: record.clientCertificatePEM)).map { .string($0.fingerprint) } ?? .null),
            ("default_release", record.defaultRelease.map(JSONValue.string) ?? .null),
            ("etag", .string(partnerETag(record))),
        ])
    }

    /// A partner's entity tag: a hash of every stored field (its secrets by reference and version, so a new key or
    /// certificate gives a new tag).
    static func partnerETag(_ record: PartnerRecord) -> String {
        let fields = [
            record.id, record.environment.rawValue, record.baseURL, record.authForm.rawValue, record.apiKey.description, record.clientCertificatePEM,
            record.clientKey.description, record.defaultRelease ?? "",
        ]
        return EntityTag.hashing("partner\u{1E}" + fields.joined(separator: "\u{1F}"))
    }

    /// A sealed credential by reference: which one and which version, nothing of the secret.
    static func credential(_ reference: CredentialRef?) -> JSONValue {
        guard let reference else { return .null }
        return .object([("credential_id", .string(reference.id)), ("version", .int(reference.version))])
    }
}
