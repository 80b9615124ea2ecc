import Foundation
import GatewayCore
import Yams

/// Everything the simulator is started with; decoded from YAML (`klarna-simulator --config FILE`) or built in code
/// by tests. Every key is optional except the TLS material and at least one acquirer; file paths are relative to
/// the YAML file's directory.
///
/// ```yaml
/// listen: {host: 127.0.0.1, port: 0}          # HTTPS API; 0 = any free port
/// control: {host: 127.0.0.1, port: 0}         # plain-HTTP control endpoint; loopback only
/// tls:
///   certificate_file: server.pem               # or certificate_pem: "-----BEGIN…"
///   key_file: server.key                       # or key_pem
///   client_ca_file: ca.pem                     # or client_ca_pem; client certificates must chain to it
///   ca_key_file: ca.key                        # or ca_key_pem; signs CSRs (optional: without it CSR calls get 503)
///   require_client_certificate: true           # false: handshake without a certificate, then 401 NOT_PRESENT
/// acquirers:
///   - {id: ACQ1, krn: "krn:partner:global:account:test:ACQ1", api_keys: [klarna_test_api_…], api_key_files: [acquirer-api-key]}
/// merchants:
///   - {krn: "krn:partner:global:account:test:M1", acquirer: ACQ1, api_keys: []}
/// rate_limits:
///   per_account: {default: 50, createPaymentRequest: 5}   # keys: operation id, rate-limit category or default
///   per_acquirer: {default: 500}                          # 0 = unlimited
/// webhook_retry_scale: 1.0                     # multiplies Klarna's 10 s, 2 min, 15 min, 3 h, 6 h, 12 h
/// faults: []                                   # FaultRule list, same fields as POST /control/faults
/// seed: 42                                     # makes rate-based faults and generated ids repeatable
/// record_capacity: 100000                      # requests kept for GET /control/requests
/// recorded_headers: [X-Test-Run]               # extra request headers to record
/// webhook_ca_file: receiver-ca.pem             # roots for https webhook URLs (default: system roots)
/// catalogue_file: ../config/catalogue/operations.tsv   # default: found from the working directory
/// disputes: []                                 # seeded disputes; generated when absent
/// settlements: []                              # seeded settlements; generated when absent
/// ```
public struct SimulatorConfiguration: Codable, Sendable {
    /// A host and port to listen on.
    public struct Listen: Codable, Sendable {
        /// Address to bind (default 127.0.0.1).
        public var host: String
        /// Port; 0 picks a free one.
        public var port: Int
        /// Makes a listen address.
        public init(host: String = "127.0.0.1", port: Int = 0) {
            self.host = host
            self.port = port
        }
    }

    /// TLS material, from files or inline PEM.
    public struct TLS: Codable, Sendable {
        /// Server certificate chain file (PEM).
        public var certificateFile: String?
        /// Server certificate chain, inline PEM.
        public var certificatePEM: String?
        /// Server private key file (PEM).
        public var keyFile: String?
        /// Server private key, inline PEM.
        public var keyPEM: String?
        /// CA that client certificates must chain to (PEM file).
        public var clientCAFile: String?
        /// CA that client certificates must chain to, inline PEM.
        public var clientCAPEM: String?
        /// The CA's private key file, for signing CSRs.
        public var caKeyFile: String?
        /// The CA's private key, inline PEM.
        public var caKeyPEM: String?
        /// Whether the handshake fails without a client certificate (Klarna's enforced mTLS); default true.
        public var requireClientCertificate: Bool?

        enum CodingKeys: String, CodingKey {
            case certificateFile = "certificate_file", certificatePEM = "certificate_pem", keyFile = "key_file", keyPEM = "key_pem"
            case clientCAFile = "client_ca_file", clientCAPEM = "client_ca_pem", caKeyFile = "ca_key_file", caKeyPEM = "ca_key_pem"
            case requireClientCertificate = "require_client_certificate"
        }

        /// Inline TLS material (what tests use).
        public init(certificatePEM: String, keyPEM: String, clientCAPEM: String, caKeyPEM: String? = nil, requireClientCertificate: Bool = true) {
            self.certificatePEM = certificatePEM
            self.keyPEM = keyPEM
            self.clientCAPEM = clientCAPEM
            self.caKeyPEM = caKeyPEM
            self.requireClientCertificate = requireClientCertificate
        }
    }

    /// An acquiring partner: its KRN and the keys it calls with.
    public struct Acquirer: Codable, Sendable {
        /// A short id merchants refer to.
        public var id: String
        /// `krn:partner:global:account:test:…`.
        public var krn: String
        /// Accepted API keys (`klarna_test_api_…`).
        public var apiKeys: [String]
        /// Files each holding one more key (so the key need not be copied into the YAML).
        public var apiKeyFiles: [String]?
        enum CodingKeys: String, CodingKey { case id, krn, apiKeys = "api_keys", apiKeyFiles = "api_key_files" }
        /// Makes an acquirer.
        public init(id: String, krn: String, apiKeys: [String], apiKeyFiles: [String]? = nil) {
            self.id = id
            self.krn = krn
            self.apiKeys = apiKeys
            self.apiKeyFiles = apiKeyFiles
        }
        /// Decodes with `api_keys` optional when `api_key_files` is given.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            krn = try c.decode(String.self, forKey: .krn)
            apiKeys = try c.decodeIfPresent([String].self, forKey: .apiKeys) ?? []
            apiKeyFiles = try c.decodeIfPresent([String].self, forKey: .apiKeyFiles)
        }
    }

    /// A merchant (partner account) of an acquirer, optionally with its own keys for direct-scope calls.
    public struct Merchant: Codable, Sendable {
        /// The merchant's KRN.
        public var krn: String
        /// Id of the acquirer it belongs to; default the first acquirer.
        public var acquirer: String?
        /// The merchant's own keys (direct model).
        public var apiKeys: [String]?
        enum CodingKeys: String, CodingKey { case krn, acquirer, apiKeys = "api_keys" }
        /// Makes a merchant.
        public init(krn: String, acquirer: String? = nil, apiKeys: [String]? = nil) {
            self.krn = krn
            self.acquirer = acquirer
            self.apiKeys = apiKeys
        }
    }

    /// Requests per second, looked up by operation id, then rate-limit category, then `default`; 0 = unlimited.
    public struct RateLimits: Codable, Sendable {
        /// Per (merchant account, category) limits; defaults are Klarna's test figures.
        public var perAccount: [String: Int]?
        /// Per (acquirer, category) limits.
        public var perAcquirer: [String: Int]?
        enum CodingKeys: String, CodingKey { case perAccount = "per_account", perAcquirer = "per_acquirer" }
        /// Makes limits; nil keeps the defaults.
        public init(perAccount: [String: Int]? = nil, perAcquirer: [String: Int]? = nil) {
            self.perAccount = perAccount
            self.perAcquirer = perAcquirer
        }
        /// No limits at all: for benchmarks.
        public static let unlimited = RateLimits(perAccount: ["default": 0], perAcquirer: ["default": 0])
        /// Klarna's published test figures: 5/s for payment-request creation, 50/s for the rest.
        public static let defaultPerAccount: [String: Int] = [
            "default": 50, "createPaymentRequest": 5, "createPaymentRequestDirect": 5, "createPaymentRequestV1": 5,
        ]
        /// A larger per-acquirer figure (Klarna publishes none).
        public static let defaultPerAcquirer: [String: Int] = ["default": 500]
    }

    /// A seeded dispute.
    public struct SeedDispute: Codable, Sendable {
        /// Dispute id.
        public var id: String
        /// Merchant KRN it belongs to.
        public var merchant: String
        /// Disputed amount in minor units.
        public var amount: Int
        /// ISO currency.
        public var currency: String
        /// Klarna's reason code.
        public var reason: String
        /// Disputed transaction id.
        public var paymentTransactionID: String?
        enum CodingKeys: String, CodingKey { case id, merchant, amount, currency, reason, paymentTransactionID = "payment_transaction_id" }
    }

    /// A seeded settlement.
    public struct SeedSettlement: Codable, Sendable {
        /// Settlement id.
        public var id: String
        /// Acquirer id it belongs to.
        public var acquirer: String
        /// ISO currency.
        public var currency: String
        /// Net payout in minor units.
        public var amount: Int
        /// Number of transactions generated for it.
        public var transactionCount: Int?
        enum CodingKeys: String, CodingKey { case id, acquirer, currency, amount, transactionCount = "transaction_count" }
    }

    /// HTTPS listener.
    public var listen: Listen
    /// Control listener (plain HTTP; keep it on loopback).
    public var control: Listen
    /// TLS material.
    public var tls: TLS
    /// Acquirers.
    public var acquirers: [Acquirer]
    /// Merchants.
    public var merchants: [Merchant]
    /// Rate limits.
    public var rateLimits: RateLimits?
    /// Multiplies the webhook retry schedule (0.001 in tests).
    public var webhookRetryScale: Double?
    /// Fault rules active from the start.
    public var faults: [FaultRule]?
    /// Seed for rate-based faults.
    public var seed: UInt64?
    /// Bound of the request record.
    public var recordCapacity: Int?
    /// Extra header names to record.
    public var recordedHeaders: [String]?
    /// PEM roots trusted for https webhook URLs (default: the system's roots).
    public var webhookCAFile: String?
    /// Path of the operation catalogue TSV.
    public var catalogueFile: String?
    /// Seeded disputes (generated when nil).
    public var disputes: [SeedDispute]?
    /// Seeded settlements (generated when nil).
    public var settlements: [SeedSettlement]?
    /// Directory relative paths are resolved against (set by `load(from:)`; not a YAML key).
    public var baseDirectory: String?

    enum CodingKeys: String, CodingKey {
        case listen, control, tls, acquirers, merchants, seed, faults, disputes, settlements
        case rateLimits = "rate_limits", webhookRetryScale = "webhook_retry_scale", recordCapacity = "record_capacity"
        case recordedHeaders = "recorded_headers", catalogueFile = "catalogue_file", webhookCAFile = "webhook_ca_file"
    }

    /// Builds a configuration in code (tests).
    public init(
        listen: Listen = Listen(), control: Listen = Listen(), tls: TLS, acquirers: [Acquirer], merchants: [Merchant],
        rateLimits: RateLimits? = nil, webhookRetryScale: Double? = nil, faults: [FaultRule]? = nil, seed: UInt64? = nil,
        recordCapacity: Int? = nil, recordedHeaders: [String]? = nil, catalogueFile: String? = nil
    ) {
        self.listen = listen
        self.control = control
        self.tls = tls
        self.acquirers = acquirers
        self.merchants = merchants
        self.rateLimits = rateLimits
        self.webhookRetryScale = webhookRetryScale
        self.faults = faults
        self.seed = seed
        self.recordCapacity = recordCapacity
        self.recordedHeaders = recordedHeaders
        self.catalogueFile = catalogueFile
    }

    /// Decodes keys that may be missing with their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(Listen.self, forKey: .listen) ?? Listen()
        control = try c.decodeIfPresent(Listen.self, forKey: .control) ?? Listen()
        tls = try c.decode(TLS.self, forKey: .tls)
        acquirers = try c.decode([Acquirer].self, forKey: .acquirers)
        merchants = try c.decodeIfPresent([Merchant].self, forKey: .merchants) ?? []
        rateLimits = try c.decodeIfPresent(RateLimits.self, forKey: .rateLimits)
        webhookRetryScale = try c.decodeIfPresent(Double.self, forKey: .webhookRetryScale)
        faults = try c.decodeIfPresent([FaultRule].self, forKey: .faults)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        recordCapacity = try c.decodeIfPresent(Int.self, forKey: .recordCapacity)
        recordedHeaders = try c.decodeIfPresent([String].self, forKey: .recordedHeaders)
        webhookCAFile = try c.decodeIfPresent(String.self, forKey: .webhookCAFile)
        catalogueFile = try c.decodeIfPresent(String.self, forKey: .catalogueFile)
        disputes = try c.decodeIfPresent([SeedDispute].self, forKey: .disputes)
        settlements = try c.decodeIfPresent([SeedSettlement].self, forKey: .settlements)
    }

    /// Reads and decodes a YAML file; relative paths in it are then resolved against its directory.
    public static func load(from path: String) throws -> SimulatorConfiguration {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var configuration = try YAMLDecoder().decode(SimulatorConfiguration.self, from: text)
        configuration.baseDirectory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return configuration
    }

    /// Why a configuration cannot start.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        /// What is wrong.
        public let reason: String
        /// Readable form.
        public var description: String { "invalid simulator configuration: \(reason)" }
    }

    func resolve(_ path: String) -> String {
        guard !path.hasPrefix("/"), let baseDirectory else { return path }
        return URL(fileURLWithPath: baseDirectory).appendingPathComponent(path).path
    }

    /// Inline PEM if given, else the file's contents.
    func pem(inline: String?, file: String?, name: String) throws -> String? {
        if let inline { return inline }
        guard let file else { return nil }
        do { return try String(contentsOfFile: resolve(file), encoding: .utf8) } catch {
            throw Invalid(reason: "cannot read \(name) file \(file): \(error)")
        }
    }

    /// A copy with `api_key_files` read into `api_keys`.
    func loadingKeyFiles() throws -> SimulatorConfiguration {
        var copy = self
        for index in copy.acquirers.indices {
            for file in copy.acquirers[index].apiKeyFiles ?? [] {
                guard let text = try? String(contentsOfFile: resolve(file), encoding: .utf8) else { throw Invalid(reason: "cannot read api key file \(file)") }
                copy.acquirers[index].apiKeys.append(text.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            copy.acquirers[index].apiKeyFiles = nil
        }
        return copy
    }

    /// Checks keys are test keys and KRNs are test KRNs; the simulator stands in for the test environment only.
    func validate() throws {
        guard !acquirers.isEmpty else { throw Invalid(reason: "at least one acquirer is required") }
        var keys = Set<String>()
        for acquirer in acquirers {
            guard let krn = AccountKRN(acquirer.krn), krn.environment == .test else { throw Invalid(reason: "acquirer \(acquirer.id): krn must be a test partner KRN") }
            for key in acquirer.apiKeys {
                guard KlarnaEnvironment.of(apiKey: key) == .test else { throw Invalid(reason: "acquirer \(acquirer.id): only klarna_test_api_ keys are accepted") }
                guard keys.insert(key).inserted else { throw Invalid(reason: "an API key is configured twice") }
            }
        }
        for merchant in merchants {
            guard let krn = AccountKRN(merchant.krn), krn.environment == .test else { throw Invalid(reason: "merchant \(merchant.krn): not a test partner KRN") }
            if let acquirer = merchant.acquirer, !acquirers.contains(where: { $0.id == acquirer }) {
                throw Invalid(reason: "merchant \(merchant.krn): unknown acquirer \(acquirer)")
            }
            for key in merchant.apiKeys ?? [] {
                guard KlarnaEnvironment.of(apiKey: key) == .test else { throw Invalid(reason: "merchant \(merchant.krn): only klarna_test_api_ keys are accepted") }
                guard keys.insert(key).inserted else { throw Invalid(reason: "an API key is configured twice") }
            }
        }
        if let scale = webhookRetryScale, !(scale >= 0) { throw Invalid(reason: "webhook_retry_scale must be >= 0") }
    }

    /// The catalogue text: the configured file, else `config/catalogue/operations.tsv` under the working directory
    /// or any parent, else the one in this source tree.
    func catalogueText() throws -> String {
        var candidates: [String] = []
        if let catalogueFile { candidates.append(resolve(catalogueFile)) }
        var directory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for _ in 0..<6 {
            candidates.append(directory.appendingPathComponent("config/catalogue/operations.tsv").path)
            directory.deleteLastPathComponent()
        }
        candidates.append(Self.sourceTreeCatalogue)
        for candidate in candidates {
            if let text = try? String(contentsOfFile: candidate, encoding: .utf8) { return text }
            if catalogueFile != nil && candidate == candidates[0] { throw Invalid(reason: "cannot read catalogue_file \(candidate)") }
        }
        throw Invalid(reason: "no operation catalogue found; set catalogue_file")
    }

    /// The catalogue in the source tree this binary was built from (works for tests and `swift run`).
    static var sourceTreeCatalogue: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/catalogue/operations.tsv").path
    }
}
