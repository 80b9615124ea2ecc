import Foundation
import GatewayAudit
import GatewayCore

/// `config/gateway.yaml`: how the gateway runs. Every key is documented in `docs/config.md`.
public struct GatewayConfig: Sendable, Codable {
    /// Identifies this instance in audit records and logs.
    public var nodeID: String
    /// A SQLite file path (relative to the config file), or later a `postgres://` URL.
    public var storage: String
    /// Where the master key ring comes from.
    public var masterKey: MasterKeySource
    /// The operation catalogue file.
    public var catalogue: String
    /// Policy files.
    public var policies: Policies
    /// Ingress listeners.
    public var listeners: [Listener]
    /// Toward Klarna.
    public var upstream: Upstream
    /// Size limits on ingress requests.
    public var limits: Limits
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`, `/admin/v1/`); nil for none.
    public var admin: AdminListener?
    /// The audit trail: file, durability mode, checkpoints, queue bound.
    public var audit: AuditSettings
    /// False runs without an audit trail (benchmarks only: every call then goes unrecorded).
    public var auditEnabled: Bool
    /// How often the store is polled for changes, in milliseconds.
    public var reloadIntervalMs: Int
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    public var logLevel: String
    /// Event-loop threads serving calls; 0 (the default) is one per core.
    public var eventLoops: Int
    /// How long a graceful stop (SIGTERM, SIGINT) waits for calls in flight before closing what is left, seconds.
    public var shutdownGraceSeconds: Int
    /// Metrics settings.
    public var metrics: Metrics
    /// How instances on one PostgreSQL share each limit (`GatewayConfig+QuotaLeasing.swift`).
    public var quotaLeasing: QuotaLeasing
    /// OpenTelemetry traces of calls (`GatewayConfig+Tracing.swift`); off by default.
    public var tracing: Tracing
    /// Delivering Klarna's webhooks (`GatewayConfig+Webhooks.swift`).
    public var webhooks: Webhooks
    /// The directory relative paths are resolved against (the config file's); not read from YAML.
    public var baseDirectory: String = "."

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", storage, masterKey = "master_key", catalogue, policies, listeners, upstream, limits, admin, audit
        case reloadIntervalMs = "reload_interval_ms", logLevel = "log_level", eventLoops = "event_loops"
        case shutdownGraceSeconds = "shutdown_grace_seconds", metrics, quotaLeasing = "quota_leasing", tracing, webhooks
    }

    /// Decodes with defaults for everything but `storage`, `master_key` and `listeners`. In the administration
    /// scope (`ConfigScope`) only the store's, key ring's, catalogue's and policies' keys are read; the rest keeps
    /// its defaults, so a section the command never uses cannot stop it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let serving = (decoder.userInfo[ConfigScope.userInfoKey] as? ConfigScope ?? .serving) == .serving
        func section<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            guard serving else { return fallback }
            return try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        nodeID = try c.decodeIfPresent(String.self, forKey: .nodeID) ?? (ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "gateway")
        storage = try c.decode(String.self, forKey: .storage)
        masterKey = try c.decode(MasterKeySource.self, forKey: .masterKey)
        catalogue = try c.decodeIfPresent(String.self, forKey: .catalogue) ?? "catalogue/operations.tsv"
        policies = try c.decodeIfPresent(Policies.self, forKey: .policies) ?? Policies(access: "../policies/access.yaml")
        listeners = serving ? try c.decode([Listener].self, forKey: .listeners) : []
        upstream = try section(.upstream, Upstream())
        limits = try section(.limits, Limits())
        admin = serving ? try c.decodeIfPresent(AdminListener.self, forKey: .admin) : nil
        audit = try section(.audit, AuditSettings())
        auditEnabled = try section(.audit, AuditToggle()).enabled ?? true
        reloadIntervalMs = try section(.reloadIntervalMs, 500)
        logLevel = try section(.logLevel, "info")
        eventLoops = try section(.eventLoops, 0)
        shutdownGraceSeconds = try section(.shutdownGraceSeconds, 65)
        metrics = try section(.metrics, Metrics())
        quotaLeasing = try section(.quotaLeasing, QuotaLeasing())
        tracing = try section(.tracing, Tracing())
        webhooks = try section(.webhooks, Webhooks())
    }

    /// What `/metrics` exports.
    public struct Metrics: Sendable, Codable, Equatable {
        /// Adds a `merchant` label to the per-call series; off by default because thousands of merchants multiply
        /// every series by that many.
        public var merchantLabels: Bool

        enum CodingKeys: String, CodingKey { case merchantLabels = "merchant_labels" }

        /// No merchant labels.
        public init() { merchantLabels = false }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            merchantLabels = try c.decodeIfPresent(Bool.self, forKey: .merchantLabels) ?? false
        }
    }

    /// The `enabled` key of the `audit` section, read beside the writer's own settings.
    struct AuditToggle: Decodable {
        var enabled: Bool?
    }

    /// The master key ring's source: a file, or an environment variable.
    public struct MasterKeySource: Sendable, Codable {
        /// A key-ring file (mode 0600 or stricter); relative to the config file.
        public var file: String?
        /// The name of an environment variable holding the key ring.
        public var environment: String?
    }

    /// Policy file locations.
    public struct Policies: Sendable, Codable {
        /// Grants: which caller may act for which merchants, partners and families.
        public var access: String
        /// Rate limits; nil uses Klarna's published per-merchant figures.
        public var rateLimits: String?
        /// Release calendar, group pins, release upstreams; nil uses the built-in calendar.
        public var releases: String?
        /// Webhook routes (event types and merchants to destinations); nil routes nothing.
        public var webhooks: String?

        /// Makes policy locations.
        public init(access: String, rateLimits: String? = nil, releases: String? = nil, webhooks: String? = nil) {
            self.access = access
            self.rateLimits = rateLimits
            self.releases = releases
            self.webhooks = webhooks
        }

        enum CodingKeys: String, CodingKey { case access, rateLimits = "rate_limits", releases, webhooks }

        /// The files whose change triggers a reload.
        var files: [String] { [access] + [rateLimits, releases, webhooks].compactMap { $0 } }

        /// What serves `kind` when the store holds no version of it: its file (as written in the config), or Klarna's
        /// defaults for rate limits without one.
        public func fileDescription(_ kind: StoredPolicyKind) -> String {
            switch kind {
            case .access: return "the file \(access)"
            case .rateLimits: return rateLimits.map { "the file \($0)" } ?? "Klarna's default rate limits (no policies.rate_limits file)"
            }
        }
    }

    /// One ingress listener.
    public struct Listener: Sendable, Codable {
        /// A name for logs.
        public var name: String
        /// Address to bind.
        public var address: String
        /// Port to bind (0 picks a free one; the chosen port is logged).
        public var port: Int
        /// TLS; nil serves plain HTTP, allowed only on loopback addresses.
        public var tls: TLS?
        /// Offer HTTP/2 through ALPN (TLS listeners only).
        public var http2: Bool?
        /// Receive Klarna's webhooks here (`POST /klarna/webhooks/{partner_id}` only) instead of proxying.
        public var klarnaWebhooks: Bool?

        enum CodingKeys: String, CodingKey { case name, address, port, tls, http2, klarnaWebhooks = "klarna_webhooks" }
    }

    /// A listener's TLS settings.
    public struct TLS: Sendable, Codable {
        /// Server certificate chain, PEM.
        public var certificate: String
        /// Server private key, PEM.
        public var privateKey: String
        /// CA that signs callers' client certificates.
        public var clientCA: String?
        /// `none`, `optional` or `required`.
        public var clientCertificates: ClientCertificates

        enum CodingKeys: String, CodingKey {
            case certificate, privateKey = "private_key", clientCA = "client_ca", clientCertificates = "client_certificates"
        }
    }

    /// Whether a listener asks for client certificates.
    public enum ClientCertificates: String, Sendable, Codable {
        case none, optional, required
    }

    /// Settings toward Klarna.
    public struct Upstream: Sendable, Codable {
        /// A CA file to trust for upstream servers; nil uses the system roots.
        public var caFile: String?
        /// Hosts beyond Klarna's own the gateway may send to (a simulator, a candidate pool), with their environment.
        public var egress: [EgressRule]
        /// `Klarna-Integration-Metadata` integrator fields; nil sends no header.
        public var integrator: Integrator?
        /// Tracing headers to strip, added to the built-in list.
        public var stripHeaders: [String]
        /// Connect timeout, milliseconds.
        public var connectTimeoutMs: Int
        /// Time to the response head, milliseconds (just above Klarna's 59 s idle timeout by default).
        public var responseTimeoutMs: Int
        /// Idle keep-alive connections kept per (host, client certificate) and event loop.
        public var maxIdlePerKey: Int
        /// `refuse` (default) or `forward` requests no catalogue operation matches.
        public var unknownOperations: String
        /// After a client certificate rotation, how long connections still presenting the old certificate may
        /// finish their calls before they are closed, seconds.
        public var drainSeconds: Int
        /// Timeouts beyond connect and response head, and per-family overrides (`GatewayConfig+Resilience.swift`).
        public var timeouts: TimeoutSettings
        /// Retries and their budget.
        public var retries: RetrySettings
        /// The per-host circuit breaker.
        public var circuitBreaker: BreakerSettings
        /// Add a `Klarna-Idempotency-Key` to POST and PATCH calls that lack one.
        public var idempotencyKeys: Bool

        enum CodingKeys: String, CodingKey {
            case caFile = "ca_file", egress, integrator, stripHeaders = "strip_headers"
            case connectTimeoutMs = "connect_timeout_ms", responseTimeoutMs = "response_timeout_ms"
            case maxIdlePerKey = "max_idle_per_key", unknownOperations = "unknown_operations", drainSeconds = "drain_seconds"
            case timeouts, retries, circuitBreaker = "circuit_breaker", idempotencyKeys = "idempotency_keys"
        }

        /// Defaults: system roots, Klarna's hosts only, no integrator tag, 5 s connect, 60 s to the response head.
        public init() {
            caFile = nil
            egress = []
            integrator = nil
            stripHeaders = []
            connectTimeoutMs = 5_000
            responseTimeoutMs = 60_000
            maxIdlePerKey = 64
            unknownOperations = "refuse"
            drainSeconds = 30
            timeouts = TimeoutSettings()
            retries = RetrySettings()
            circuitBreaker = BreakerSettings()
            idempotencyKeys = true
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Upstream()
            caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
            egress = try c.decodeIfPresent([EgressRule].self, forKey: .egress) ?? defaults.egress
            integrator = try c.decodeIfPresent(Integrator.self, forKey: .integrator)
            stripHeaders = try c.decodeIfPresent([String].self, forKey: .stripHeaders) ?? defaults.stripHeaders
            connectTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .connectTimeoutMs) ?? defaults.connectTimeoutMs
            responseTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .responseTimeoutMs) ?? defaults.responseTimeoutMs
            maxIdlePerKey = try c.decodeIfPresent(Int.self, forKey: .maxIdlePerKey) ?? defaults.maxIdlePerKey
            unknownOperations = try c.decodeIfPresent(String.self, forKey: .unknownOperations) ?? defaults.unknownOperations
            drainSeconds = try c.decodeIfPresent(Int.self, forKey: .drainSeconds) ?? defaults.drainSeconds
            timeouts = try c.decodeIfPresent(TimeoutSettings.self, forKey: .timeouts) ?? defaults.timeouts
            retries = try c.decodeIfPresent(RetrySettings.self, forKey: .retries) ?? defaults.retries
            circuitBreaker = try c.decodeIfPresent(BreakerSettings.self, forKey: .circuitBreaker) ?? defaults.circuitBreaker
            idempotencyKeys = try c.decodeIfPresent(Bool.self, forKey: .idempotencyKeys) ?? defaults.idempotencyKeys
        }
    }

    /// The integrator tag sent in `Klarna-Integration-Metadata`.
    public struct Integrator: Sendable, Codable {
        /// Integrator name.
        public var name: String
        /// Module name.
        public var moduleName: String
        /// Module version.
        public var moduleVersion: String

        enum CodingKeys: String, CodingKey { case name, moduleName = "module_name", moduleVersion = "module_version" }
    }

    /// Ingress size limits (Klarna's own by default).
    public struct Limits: Sendable, Codable {
        /// Largest request body, bytes.
        public var maxBodyBytes: Int
        /// Largest single header line, bytes.
        public var maxHeaderBytes: Int
        /// Largest header block, bytes.
        public var maxHeadersTotalBytes: Int
        /// Largest answer held until its outcome record is written; larger answers stream.
        public var maxHeldResponseBytes: Int
        /// Time a new connection has to finish TLS and send a complete request head, milliseconds.
        public var headerReadTimeoutMs: Int
        /// Time a keep-alive connection may sit idle (or not read its answers), milliseconds.
        public var idleTimeoutMs: Int
        /// Calls being served at once (all listeners); beyond it a fast 503 `GATEWAY_OVERLOADED`.
        public var maxInFlightRequests: Int
        /// Open ingress connections across every listener; beyond it a new connection is closed as it is accepted,
        /// before TLS (docs/security.md).
        public var maxConnections: Int

        enum CodingKeys: String, CodingKey {
            case maxBodyBytes = "max_body_bytes", maxHeaderBytes = "max_header_bytes", maxHeadersTotalBytes = "max_headers_total_bytes"
            case maxHeldResponseBytes = "max_held_response_bytes", headerReadTimeoutMs = "header_read_timeout_ms"
            case idleTimeoutMs = "idle_timeout_ms", maxConnections = "max_connections", maxInFlightRequests = "max_in_flight_requests"
        }

        /// Klarna's limits: 1 MB body, 6 KB per header, 20 KB of headers.
        public init() {
            maxBodyBytes = 1_048_576
            maxHeaderBytes = 6_144
            maxHeadersTotalBytes = 20_480
            maxHeldResponseBytes = 4_194_304
            headerReadTimeoutMs = 10_000
            idleTimeoutMs = 75_000
            maxConnections = 10_000
            maxInFlightRequests = 512
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Limits()
            maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? defaults.maxBodyBytes
            maxHeaderBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeaderBytes) ?? defaults.maxHeaderBytes
            maxHeadersTotalBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeadersTotalBytes) ?? defaults.maxHeadersTotalBytes
            maxHeldResponseBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeldResponseBytes) ?? defaults.maxHeldResponseBytes
            headerReadTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .headerReadTimeoutMs) ?? defaults.headerReadTimeoutMs
            idleTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutMs) ?? defaults.idleTimeoutMs
            maxInFlightRequests = try c.decodeIfPresent(Int.self, forKey: .maxInFlightRequests) ?? defaults.maxInFlightRequests
            maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? defaults.maxConnections
        }
    }

    /// Where the admin listener binds, and its TLS when configured.
    public struct AdminListener: Sendable, Codable {
        /// Address.
        public var address: String
        /// Port.
        public var port: Int
        /// Server certificate and key; nil serves plain HTTP, which is allowed on loopback only.
        public var tls: AdminTLS?
    }

    /// The admin listener's TLS: a server certificate and, when admins authenticate with client certificates,
    /// the CA that signs them.
    public struct AdminTLS: Sendable, Codable {
        /// Server certificate chain, PEM.
        public var certificate: String
        /// Server private key, PEM.
        public var privateKey: String
        /// CA that signs admins' client certificates.
        public var clientCA: String?
        /// `none` (the default), `optional` or `required`, as for `listeners[].tls`.
        public var clientCertificates: ClientCertificates?

        enum CodingKeys: String, CodingKey {
            case certificate, privateKey = "private_key", clientCA = "client_ca", clientCertificates = "client_certificates"
        }
    }

    /// A config-relative path made absolute.
    public func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return baseDirectory + "/" + path
    }

    /// The request-path settings the snapshot carries.
    public var pipelineSettings: PipelineSettings {
        PipelineSettings(
            egress: upstream.egress,
            stripHeaders: PipelineSettings.defaultStripHeaders.union(upstream.stripHeaders.map { $0.lowercased() }),
            integrationMetadata: upstream.integrator.map {
                "{\"integrator\":{\"name\":\(JSONText.quote($0.name)),\"module_name\":\(JSONText.quote($0.moduleName)),"
                    + "\"module_version\":\(JSONText.quote($0.moduleVersion))}}"
            },
            forwardUnknownOperations: upstream.unknownOperations == "forward"
        )
    }
}
