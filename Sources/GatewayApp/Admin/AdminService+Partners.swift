import Foundation
import GatewayCore

/// A partner as listings show it: the record plus what can be said about its secrets without revealing them.
public struct PartnerSummary: Sendable {
    /// The stored record.
    public let record: PartnerRecord
    /// The API key's last four characters, or why it cannot be opened.
    public let apiKeyHint: String
    /// SHA-256 fingerprint of the client certificate's leaf.
    public let certificateFingerprint: String
    /// When the client certificate expires.
    public let certificateNotValidAfter: Date?
    /// How many merchants use this partner.
    public let merchantCount: Int
}

/// What `partners add` needs; secrets arrive already read from files or stdin.
public struct NewPartner: Sendable {
    /// Partner id.
    public var id: String
    /// Its Klarna environment.
    public var environment: KlarnaEnvironment
    /// Its API key.
    public var apiKey: Secret
    /// Its mTLS client certificate chain, PEM.
    public var certificatePEM: String
    /// The certificate's private key, PEM.
    public var clientKeyPEM: Secret
    /// Upstream base URL; nil for Klarna's host of the environment.
    public var baseURL: String?
    /// How the key is written into `Authorization`.
    public var authForm: BasicAuthForm

    /// Makes the input of `partners add`.
    public init(
        id: String, environment: KlarnaEnvironment, apiKey: Secret, certificatePEM: String, clientKeyPEM: Secret,
        baseURL: String? = nil, authForm: BasicAuthForm = .rawKey
    ) {
        self.id = id
        self.environment = environment
        self.apiKey = apiKey
        self.certificatePEM = certificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.baseURL = baseURL
        self.authForm = authForm
    }
}

/// A change of a partner's settings, not of its secrets; nil leaves a field as it is.
public struct PartnerChange: Sendable {
    /// A new upstream base URL.
    public var baseURL: String?
    /// A new form of the key in `Authorization`.
    public var authForm: BasicAuthForm?
    /// A new default release; `.some(nil)` removes it.
    public var defaultRelease: String??

    /// Makes a change; the fields not given stay as they are.
    public init(baseURL: String? = nil, authForm: BasicAuthForm? = nil, defaultRelease: String?? = nil) {
        self.baseURL = baseURL
        self.authForm = authForm
        self.defaultRelease = defaultRelease
    }

    /// The fields given, for the change log (`base url https://… default release none`); a partner's settings hold
    /// no secret.
    var summary: String {
        var parts: [String] = []
        if let baseURL { parts.append("base url \(baseURL)") }
        if let authForm { parts.append("auth form \(authForm.rawValue)") }
        if let defaultRelease { parts.append("default release \(defaultRelease ?? "none")") }
        return parts.joined(separator: " ")
    }
}

extension AdminService {
    /// `record` with `change` made, checked as `partners add` checks a base URL and as `merchants update --release`
    /// checks a release (known, and available in the partner's environment today: else every call of its merchants
    /// that follow the default would be refused).
    public static func changed(
        _ record: PartnerRecord, by change: PartnerChange, policy: ReleasePolicy, today: String = AdminService.today()
    ) throws -> PartnerRecord {
        var record = record
        if let baseURL = change.baseURL {
            try checkBaseURL(baseURL, environment: record.environment)
            record.baseURL = baseURL
        }
        if let authForm = change.authForm { record.authForm = authForm }
        if let defaultRelease = change.defaultRelease {
            if let release = defaultRelease { try checkPin(release, environment: record.environment, policy: policy, today: today) }
            record.defaultRelease = defaultRelease
        }
        return record
    }

    /// Changes a partner's base URL, auth form or default release after the checks of `changed(_:by:policy:)`. When
    /// `unchangedSince` is given, the partner as stored must still equal it, else `ConditionalChangeError.stalePartner`
    /// (the store has no conditional partner write, so two changes in the same moment can both pass).
    @discardableResult
    public func updatePartner(
        id: String, _ change: PartnerChange, policy: ReleasePolicy, unchangedSince expected: PartnerRecord? = nil
    ) async throws -> PartnerRecord {
        guard let current = try await store.partner(id: id) else { throw AdminError.notFound("partner", id) }
        if let expected, expected != current { throw ConditionalChangeError.stalePartner(current: current) }
        let record = try AdminService.changed(current, by: change, policy: policy)
        try await changing("partners.update", "\(id) \(change.summary)") { try await store.savePartner(record, secrets: []) }
        return record
    }

    /// Removes a partner and its sealed secrets; refused while merchants use it (move or remove them first).
    public func removePartner(id: String) async throws {
        // The store appends the event only when it deleted: a refusal (in use, absent) is no change.
        switch try await changing("partners.remove", id, { try await store.deletePartner(id: id) }) {
        case .deleted: return
        case .notFound: throw AdminError.notFound("partner", id)
        case .inUse(let merchants): throw PartnerInUse(merchants: merchants, partner: id)
        }
    }

    /// A partner that merchants still use cannot be removed.
    public struct PartnerInUse: Error, CustomStringConvertible {
        /// How many merchants use it.
        public let merchants: Int
        /// The partner.
        public let partner: String
        /// Why, for the CLI and the API's 409.
        public var description: String {
            "partner '\(partner)' is used by \(merchants) merchant(s); move or remove them first"
        }
    }

    /// Adds a partner after checking its id, key prefix, base URL, certificate and key; refuses an existing id.
    @discardableResult
    public func addPartner(_ input: NewPartner) async throws -> PartnerRecord {
        if let problem = AdminService.idProblem(input.id, kind: "partner") { throw AdminError(problem) }
        if try await store.partner(id: input.id) != nil {
            throw AdminError("partner '\(input.id)' already exists; use `partners rotate-key` or `partners rotate-cert`")
        }
        try AdminService.check(input)
        let baseURL = input.baseURL ?? input.environment.defaultBaseURL

        let owner = SecretOwner.partner(input.id)
        let record = PartnerRecord(
            id: input.id, environment: input.environment, baseURL: baseURL, authForm: input.authForm,
            apiKey: SecretOwner.partnerAPIKey(input.id, version: 1), clientCertificatePEM: input.certificatePEM,
            clientKey: SecretOwner.partnerClientKey(input.id, version: 1)
        )
        let secrets = [
            try sealer.seal(input.apiKey, owner: owner, credential: record.apiKey),
            try sealer.seal(input.clientKeyPEM, owner: owner, credential: record.clientKey),
        ]
        let fingerprint = try ClientCertificate(pem: input.certificatePEM).fingerprint
        try await changing("partners.add", "\(input.id) \(input.environment.rawValue) \(baseURL) api key \(record.apiKey) client certificate \(fingerprint)") {
            try await store.savePartner(record, secrets: secrets)
        }
        return record
    }

    /// The checks of a new partner that need no store: the key's prefix for its environment, the base URL, and a
    /// certificate that parses, is valid now and matches its key.
    public static func check(_ input: NewPartner) throws {
        try checkAPIKey(input.apiKey, environment: input.environment, owner: "partner '\(input.id)'")
        try checkBaseURL(input.baseURL ?? input.environment.defaultBaseURL, environment: input.environment)
        let certificate = try ClientCertificate(pem: input.certificatePEM)
        try certificate.checkValidity()
        try certificate.checkPrivateKey(input.clientKeyPEM)
    }

    /// The checks of a partner's new credentials, all before any is written (so a bad certificate does not leave a
    /// new key behind): the key's prefix for the partner's environment; a certificate that parses, is valid now and
    /// matches its key. Used by the admin API's credential upload and `partners update`.
    public static func checkCredentials(of record: PartnerRecord, apiKey: Secret?, certificatePEM: String?, clientKeyPEM: Secret?) throws {
        if let apiKey { try checkAPIKey(apiKey, environment: record.environment, owner: "partner '\(record.id)'") }
        if let certificatePEM, let clientKeyPEM {
            let certificate = try ClientCertificate(pem: certificatePEM)
            try certificate.checkValidity()
            try certificate.checkPrivateKey(clientKeyPEM)
        }
    }

    /// Every partner, summarised.
    public func listPartners() async throws -> [PartnerSummary] {
        let contents = try await store.contents()
        var counts: [String: Int] = [:]
        for merchant in contents.merchants { counts[merchant.partnerID, default: 0] += 1 }
        return contents.partners.map { summary(of: $0, secrets: contents.secrets, merchantCount: counts[$0.id] ?? 0) }
    }

    /// One partner, summarised.
    public func showPartner(id: String) async throws -> PartnerSummary {
        guard let summary = try await listPartners().first(where: { $0.record.id == id }) else {
            throw AdminError.notFound("partner", id)
        }
        return summary
    }

    /// Seals a new API key as the next version of the partner's key credential.
    @discardableResult
    public func rotatePartnerKey(id: String, apiKey: Secret) async throws -> CredentialRef {
        guard var record = try await store.partner(id: id) else { throw AdminError.notFound("partner", id) }
        try AdminService.checkAPIKey(apiKey, environment: record.environment, owner: "partner '\(id)'")
        record.apiKey = SecretOwner.partnerAPIKey(id, version: record.apiKey.version + 1)
        let sealed = try sealer.seal(apiKey, owner: SecretOwner.partner(id), credential: record.apiKey)
        try await changing("partners.rotate-key", "\(id) api key \(record.apiKey)") { try await store.savePartner(record, secrets: [sealed]) }
        return record.apiKey
    }

    /// Replaces the partner's client certificate and seals its key as the next version of the key credential.
    @discardableResult
    public func rotatePartnerCertificate(id: String, certificatePEM: String, clientKeyPEM: Secret) async throws -> CredentialRef {
        guard var record = try await store.partner(id: id) else { throw AdminError.notFound("partner", id) }
        let certificate = try ClientCertificate(pem: certificatePEM)
        try certificate.checkValidity()
        try certificate.checkPrivateKey(clientKeyPEM)
        record.clientCertificatePEM = certificatePEM
        record.clientKey = SecretOwner.partnerClientKey(id, version: record.clientKey.version + 1)
        let sealed = try sealer.seal(clientKeyPEM, owner: SecretOwner.partner(id), credential: record.clientKey)
        try await changing("partners.rotate-cert", "\(id) client certificate \(certificate.fingerprint) key \(record.clientKey)") {
            try await store.savePartner(record, secrets: [sealed])
        }
        return record.clientKey
    }

    private func summary(of record: PartnerRecord, secrets: [SealedSecret], merchantCount: Int) -> PartnerSummary {
        let owner = SecretOwner.partner(record.id)
        let hint: String
        if let sealed = secrets.first(where: { $0.owner == owner && $0.credential == record.apiKey }) {
            hint = (try? sealer.open(sealed).hint) ?? "(does not open)"
        } else {
            hint = "(missing)"
        }
        let certificate = try? ClientCertificate(pem: record.clientCertificatePEM)
        return PartnerSummary(
            record: record, apiKeyHint: hint, certificateFingerprint: certificate?.fingerprint ?? "(unparsable)",
            certificateNotValidAfter: certificate?.notValidAfter, merchantCount: merchantCount
        )
    }

    /// A key must carry the prefix of its environment and be one printable token.
    static func checkAPIKey(_ key: Secret, environment: KlarnaEnvironment, owner: String) throws {
        let value = key.exposedValue
        guard let keyEnvironment = KlarnaEnvironment.of(apiKey: value) else {
            throw AdminError("the API key for \(owner) does not start with klarna_test_api_ or klarna_live_api_")
        }
        guard keyEnvironment == environment else {
            throw AdminError("the API key for \(owner) is a \(keyEnvironment) key but the environment is \(environment)")
        }
        guard value.utf8.count <= 4096, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw AdminError("the API key for \(owner) contains spaces or non-printable characters")
        }
    }

    /// The base URL must parse, and a Klarna host must serve the partner's environment.
    static func checkBaseURL(_ baseURL: String, environment: KlarnaEnvironment) throws {
        guard let endpoint = UpstreamEndpoint(baseURL: baseURL) else {
            throw AdminError("base URL '\(baseURL)' is not https://host[:port][/prefix]")
        }
        if let hostEnvironment = KlarnaEnvironment.of(klarnaHost: endpoint.host), hostEnvironment != environment {
            throw AdminError("base URL host \(endpoint.host) serves \(hostEnvironment), but the partner is \(environment)")
        }
    }
}
