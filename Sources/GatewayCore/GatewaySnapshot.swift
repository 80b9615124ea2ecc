/// A partner with its credentials opened, ready for the hot path.
///
/// A value with its fields in one shared, immutable box: every call's target carries its partner, and copying the
/// record, endpoint, secrets and identity field by field (a dozen reference counts) at each step cost more than
/// the decisions made with them. A copy is now one reference count.
public struct PartnerState: Sendable {
    @usableFromInline final class Storage: Sendable {
        @usableFromInline let record: PartnerRecord
        @usableFromInline let endpoint: UpstreamEndpoint
        @usableFromInline let authorization: Secret
        @usableFromInline let keyEnvironment: KlarnaEnvironment?
        @usableFromInline let clientIdentity: ClientIdentity
        @usableFromInline let rateLimits: CategoryLimits?

        @usableFromInline init(
            record: PartnerRecord, endpoint: UpstreamEndpoint, authorization: Secret, keyEnvironment: KlarnaEnvironment?,
            clientIdentity: ClientIdentity, rateLimits: CategoryLimits?
        ) {
            self.record = record
            self.endpoint = endpoint
            self.authorization = authorization
            self.keyEnvironment = keyEnvironment
            self.clientIdentity = clientIdentity
            self.rateLimits = rateLimits
        }
    }

    @usableFromInline var storage: Storage

    /// The stored record.
    @inlinable public var record: PartnerRecord { storage.record }
    /// Where its calls go.
    @inlinable public var endpoint: UpstreamEndpoint { storage.endpoint }
    /// The full `Authorization` value to send (`Basic …`), built once.
    @inlinable public var authorization: Secret { storage.authorization }
    /// The environment the API key's prefix names.
    @inlinable public var keyEnvironment: KlarnaEnvironment? { storage.keyEnvironment }
    /// The client certificate chain (PEM, public) and its opened private key (PEM).
    @inlinable public var clientIdentity: ClientIdentity { storage.clientIdentity }
    /// Its partner-level rate limits (its override in `rate-limits.yaml`, else its environment's), resolved when
    /// the snapshot is built so the rate-limit decision looks nothing up by id.
    public internal(set) var rateLimits: CategoryLimits? {
        @inlinable get { storage.rateLimits }
        set {
            storage = Storage(
                record: storage.record, endpoint: storage.endpoint, authorization: storage.authorization,
                keyEnvironment: storage.keyEnvironment, clientIdentity: storage.clientIdentity, rateLimits: newValue)
        }
    }

    /// Builds the hot-path view of a partner from its record and opened secrets; nil when the base URL is invalid.
    public init?(record: PartnerRecord, apiKey: Secret, clientKeyPEM: Secret, certificateFingerprint: String) {
        guard let endpoint = UpstreamEndpoint(baseURL: record.baseURL) else { return nil }
        storage = Storage(
            record: record, endpoint: endpoint, authorization: BasicAuthorization.header(for: apiKey, form: record.authForm),
            keyEnvironment: KlarnaEnvironment.of(apiKey: apiKey.exposedValue),
            clientIdentity: ClientIdentity(
                certificateChainPEM: record.clientCertificatePEM, privateKeyPEM: clientKeyPEM,
                fingerprint: certificateFingerprint, credential: record.clientKey
            ),
            rateLimits: nil)
    }
}

/// The mTLS identity presented to Klarna: certificate chain, private key, and the fingerprint that keys pools.
public struct ClientIdentity: Sendable, Hashable {
    /// PEM certificate chain, leaf first.
    public let certificateChainPEM: String
    /// PEM private key.
    public let privateKeyPEM: Secret
    /// Lowercase hex SHA-256 of the leaf's DER.
    public let fingerprint: String
    /// Which sealed credential the key came from.
    public let credential: CredentialRef

    /// Makes an identity.
    public init(certificateChainPEM: String, privateKeyPEM: Secret, fingerprint: String, credential: CredentialRef) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.fingerprint = fingerprint
        self.credential = credential
    }
}

/// An active caller as the hot path reads it: its record and its caller-level rate limit (its override in
/// `rate-limits.yaml`, else the `caller` figure), resolved when the snapshot is built.
public struct CallerState: Sendable {
    /// The stored record.
    public let record: CallerRecord
    /// The `caller` rule's limit for this caller; nil for none.
    public let rateLimit: LimitSpec?
}

/// A merchant with its own key opened, if it has one.
public struct MerchantState: Sendable {
    /// The stored record.
    public let record: MerchantRecord
    /// `Authorization` for direct-model calls with the merchant's own key.
    public let ownAuthorization: Secret?
    /// The environment of the merchant's own key.
    public let ownKeyEnvironment: KlarnaEnvironment?

    /// Builds the hot-path view of a merchant.
    public init(record: MerchantRecord, ownKey: Secret?, form: BasicAuthForm) {
        self.record = record
        self.ownAuthorization = ownKey.map { BasicAuthorization.header(for: $0, form: form) }
        self.ownKeyEnvironment = ownKey.flatMap { KlarnaEnvironment.of(apiKey: $0.exposedValue) }
    }

    init(record: MerchantRecord, ownAuthorization: Secret?, ownKeyEnvironment: KlarnaEnvironment?) {
        self.record = record
        self.ownAuthorization = ownAuthorization
        self.ownKeyEnvironment = ownKeyEnvironment
    }
}

/// Everything the request path reads, immutable: reload builds a new one and swaps it in whole, so a request
/// sees one consistent configuration and never takes a lock or touches the store.
public final class GatewaySnapshot: Sendable {
    /// Partners by id.
    public let partners: [String: PartnerState]
    /// Merchants by gateway id and by account KRN.
    public let merchants: MerchantTable
    /// Active callers by token id.
    public let callersByTokenID: [String: CallerState]
    /// The same callers by the number their token id spells, so a presented token is looked up without a copy.
    public let callersByTokenNumber: [UInt64: CallerState]
    /// Active callers by client-certificate fingerprint.
    public let callersByFingerprint: [String: CallerState]
    /// Grants.
    public let access: AccessPolicy
    /// The operation catalogue.
    public let catalogue: OperationCatalogue
    /// Request-path settings from config.
    public let settings: PipelineSettings
    /// Rate limits from `policies/rate-limits.yaml`.
    public let rateLimits: RateLimitPolicy
    /// The release calendar, group pins and release upstreams from `policies/releases.yaml`.
    public let releases: ReleasePolicy
    /// Staged roll-outs in force (from the store).
    public let rollouts: [Rollout]
    /// Monotonic version, for logs and `/readyz`.
    public let version: Int64

    /// Builds a snapshot.
    public init(
        partners: [PartnerState], merchants: [MerchantState], callers: [CallerRecord], access: AccessPolicy,
        catalogue: OperationCatalogue, settings: PipelineSettings, rateLimits: RateLimitPolicy = .klarnaDefaults,
        releases: ReleasePolicy = .klarnaCalendar, rollouts: [Rollout] = [], version: Int64
    ) {
        self.partners = Dictionary(
            partners.map { partner in
                var partner = partner
                partner.rateLimits = rateLimits.partnerLimits(partnerID: partner.record.id, environment: partner.record.environment)
                return (partner.record.id, partner)
            },
            uniquingKeysWith: { _, last in last })
        self.merchants = MerchantTable(merchants)
        let active = callers.filter { $0.status == .active }.map { CallerState(record: $0, rateLimit: rateLimits.callerLimit(callerID: $0.id)) }
        self.callersByTokenID = Dictionary(
            active.compactMap { caller in caller.record.tokenID.map { ($0, caller) } }, uniquingKeysWith: { first, _ in first }
        )
        self.callersByTokenNumber = Dictionary(
            callersByTokenID.compactMap { id, caller in CallerToken.idNumber(id.utf8).map { ($0, caller) } }, uniquingKeysWith: { first, _ in first }
        )
        self.callersByFingerprint = Dictionary(
            active.compactMap { caller in caller.record.certificateFingerprint.map { ($0.lowercased(), caller) } },
            uniquingKeysWith: { first, _ in first }
        )
        self.access = access
        self.catalogue = catalogue
        self.settings = settings
        self.rateLimits = rateLimits
        self.releases = releases
        self.rollouts = rollouts
        self.version = version
    }
}

/// Request-path settings from `config/gateway.yaml`.
public struct PipelineSettings: Sendable {
    /// Hosts the gateway may send to, beyond Klarna's own.
    public var egress: [EgressRule]
    /// Lower-cased tracing headers to strip before forwarding.
    public var stripHeaders: Set<String> {
        didSet { droppedHeaders = Self.dropped(stripping: stripHeaders) }
    }
    /// What the request path drops before forwarding: the hop-by-hop headers and `stripHeaders`, in one set.
    private(set) var droppedHeaders: HeaderNameSet
    /// `Klarna-Integration-Metadata` value, one line of JSON; nil to send none.
    public var integrationMetadata: String?
    /// Forward requests no catalogue operation matches (for operations Klarna added before the catalogue was
    /// updated), recorded as operation `unknown`; only callers granted every family (`*`) may send them.
    public var forwardUnknownOperations: Bool

    /// Makes settings.
    public init(
        egress: [EgressRule] = [], stripHeaders: Set<String> = PipelineSettings.defaultStripHeaders,
        integrationMetadata: String? = nil, forwardUnknownOperations: Bool = false
    ) {
        self.egress = egress
        let stripHeaders = Set(stripHeaders.map { $0.lowercased() })
        self.stripHeaders = stripHeaders
        droppedHeaders = Self.dropped(stripping: stripHeaders)
        self.integrationMetadata = integrationMetadata
        self.forwardUnknownOperations = forwardUnknownOperations
    }

    private static func dropped(stripping: Set<String>) -> HeaderNameSet {
        HeaderNameSet(CredentialInjection.hopByHop.union(stripping))
    }

    /// Tracing headers stripped by default: they describe the acquirer's internals, not the Klarna call.
    public static let defaultStripHeaders: Set<String> = [
        "traceparent", "tracestate", "baggage", "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
        "x-b3-sampled", "x-b3-flags", "b3", "uber-trace-id", "x-amzn-trace-id", "x-cloud-trace-context",
        "x-datadog-trace-id", "x-datadog-parent-id", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
        "forwarded", "via", "x-real-ip",
    ]

    /// The environment a host serves: a configured rule first, then Klarna's own naming; nil for a host the
    /// gateway may not send to.
    public func environment(ofAuthority authority: String, host: String) -> KlarnaEnvironment? {
        if let rule = egress.first(where: { $0.host.lowercased() == authority || $0.host.lowercased() == host }) {
            return rule.environment
        }
        return KlarnaEnvironment.of(klarnaHost: host)
    }
}

/// Renders `Authorization: Basic` in either of the forms Klarna accepts.
public enum BasicAuthorization {
    /// The header value for a key in a form.
    public static func header(for key: Secret, form: BasicAuthForm) -> Secret {
        switch form {
        case .rawKey: Secret("Basic " + key.exposedValue)
        case .emptyUser: Secret("Basic " + Base64.encode(Array((":" + key.exposedValue).utf8)))
        }
    }
}

/// Standard padded base64, for `Authorization: Basic` and PEM bodies.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes bytes with padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded or unpadded base64, ignoring whitespace; nil on any other character.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in text.utf8 {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="), UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
            default: return nil
            }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((buffer >> UInt32(bits)) & 0xFF))
            }
        }
        return out
    }
}
