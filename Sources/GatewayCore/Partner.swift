/// How the API key is written into `Authorization: Basic …`; Klarna documents the raw key, some clients send
/// standard Basic with an empty user.
public enum BasicAuthForm: String, Sendable, Hashable, Codable {
    /// `Authorization: Basic klarna_test_api_…`
    case rawKey = "raw"
    /// `Authorization: Basic base64(":" + key)`
    case emptyUser = "empty-user"
}

/// A versioned reference to one sealed secret: which credential, which version of it.
public struct CredentialRef: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Stable id of the credential (e.g. `partner:acq_test:api-key`).
    public var id: String
    /// Bumped on every rotation.
    public var version: Int

    /// Makes a reference.
    public init(id: String, version: Int) {
        self.id = id
        self.version = version
    }

    /// `id@vN`, as audit records and listings show it.
    public var description: String { "\(id)@v\(version)" }
}

/// The acquirer's Klarna account in one environment: what every merchant call of that partner is sent with.
public struct PartnerRecord: Sendable, Hashable, Codable {
    /// Gateway id of the partner (`acq_test`).
    public var id: String
    /// The environment its key and certificate belong to.
    public var environment: KlarnaEnvironment
    /// Upstream base URL (`https://host[:port]`); defaults to Klarna's host for the environment.
    public var baseURL: String
    /// How the key goes into `Authorization`.
    public var authForm: BasicAuthForm
    /// The sealed API key.
    public var apiKey: CredentialRef
    /// The acquirer's mTLS client certificate chain, PEM (public).
    public var clientCertificatePEM: String
    /// The sealed private key of the client certificate.
    public var clientKey: CredentialRef
    /// Release for merchants with no pin of their own or of a group.
    public var defaultRelease: String?

    /// Makes a partner record.
    public init(
        id: String, environment: KlarnaEnvironment, baseURL: String? = nil, authForm: BasicAuthForm = .rawKey,
        apiKey: CredentialRef, clientCertificatePEM: String, clientKey: CredentialRef, defaultRelease: String? = nil
    ) {
        self.id = id
        self.environment = environment
        self.baseURL = baseURL ?? environment.defaultBaseURL
        self.authForm = authForm
        self.apiKey = apiKey
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKey = clientKey
        self.defaultRelease = defaultRelease
    }
}
