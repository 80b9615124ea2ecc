import GatewayCore

extension GatewayConfig {
    /// `tracing`: OpenTelemetry traces of calls, exported over OTLP/HTTP (docs/observability.md). Off by default;
    /// every key needs a restart.
    public struct Tracing: Sendable, Codable, Equatable {
        /// Whether calls are traced at all; off, a call does no tracing work.
        public var enabled: Bool
        /// The collector's OTLP/HTTP traces URL, used as given (`/v1/traces` is not appended).
        public var endpoint: String
        /// `http/protobuf` (the OTLP default) or `http/json`.
        public var `protocol`: String
        /// `service.name` of the exported resource.
        public var serviceName: String
        /// Which calls are traced.
        public var sampling: Sampling
        /// Finished spans waiting for export; beyond it spans are dropped and counted.
        public var queueSize: Int
        /// Spans per export request.
        public var batchSize: Int
        /// How often queued spans are sent, milliseconds.
        public var exportIntervalMs: Int
        /// An export slower than this is abandoned (its spans dropped and counted), milliseconds.
        public var exportTimeoutMs: Int

        enum CodingKeys: String, CodingKey {
            case enabled, endpoint, `protocol`, serviceName = "service_name", sampling, queueSize = "queue_size"
            case batchSize = "batch_size", exportIntervalMs = "export_interval_ms", exportTimeoutMs = "export_timeout_ms"
        }

        /// Off; when turned on: a local collector, everything sampled, 2,048 queued spans sent every 5 s.
        public init() {
            enabled = false
            endpoint = "http://localhost:4318/v1/traces"
            `protocol` = "http/protobuf"
            serviceName = "klarna-gateway"
            sampling = Sampling()
            queueSize = 2048
            batchSize = 512
            exportIntervalMs = 5000
            exportTimeoutMs = 10_000
        }

        /// Decodes with every key optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Tracing()
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
            endpoint = try c.decodeIfPresent(String.self, forKey: .endpoint) ?? d.endpoint
            `protocol` = try c.decodeIfPresent(String.self, forKey: .`protocol`) ?? d.`protocol`
            serviceName = try c.decodeIfPresent(String.self, forKey: .serviceName) ?? d.serviceName
            sampling = try c.decodeIfPresent(Sampling.self, forKey: .sampling) ?? d.sampling
            queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize) ?? d.queueSize
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
            exportIntervalMs = try c.decodeIfPresent(Int.self, forKey: .exportIntervalMs) ?? d.exportIntervalMs
            exportTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .exportTimeoutMs) ?? d.exportTimeoutMs
        }

        /// `tracing.sampling`.
        public struct Sampling: Sendable, Codable, Equatable {
            /// Share of new traces sampled, 0 to 1.
            public var ratio: Double
            /// A caller's `traceparent` sampled flag decides for its calls.
            public var parentBased: Bool
            /// Refusals and 5xx answers are traced even when not sampled.
            public var errors: Bool

            enum CodingKeys: String, CodingKey { case ratio, parentBased = "parent_based", errors }

            /// Everything, callers' decisions followed, errors always.
            public init() {
                ratio = 1
                parentBased = true
                errors = true
            }

            /// Decodes with every key optional.
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                ratio = try c.decodeIfPresent(Double.self, forKey: .ratio) ?? 1
                parentBased = try c.decodeIfPresent(Bool.self, forKey: .parentBased) ?? true
                errors = try c.decodeIfPresent(Bool.self, forKey: .errors) ?? true
            }

            /// The data plane's sampling policy.
            public var policy: TraceSampling { TraceSampling(ratio: ratio, parentBased: parentBased, errors: errors) }
        }

        /// What is wrong with the settings, for `serve` and `check`.
        public var problems: [String] {
            var problems: [String] = []
            if !(0...1).contains(sampling.ratio) { problems.append("tracing.sampling.ratio must be between 0 and 1") }
            if OTLPCollectorClient.Endpoint(endpoint) == nil {
                problems.append("tracing.endpoint must be an http:// or https:// URL (OTLP/HTTP; gRPC is not built in)")
            }
            if `protocol` != "http/protobuf" && `protocol` != "http/json" {
                problems.append("tracing.protocol must be http/protobuf or http/json")
            }
            for (name, value) in [("queue_size", queueSize), ("batch_size", batchSize), ("export_interval_ms", exportIntervalMs), ("export_timeout_ms", exportTimeoutMs)]
            where value <= 0 {
                problems.append("tracing.\(name) must be positive")
            }
            if batchSize > queueSize { problems.append("tracing.batch_size must not exceed tracing.queue_size") }
            return problems
        }
    }
}
