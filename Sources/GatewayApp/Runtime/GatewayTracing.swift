import CoreMetrics
import GatewayCore
import GatewayProxy
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The OTLP/HTTP span export behind `tracing:` (swift-otel): its tracer for the data plane, and its batch
/// processor and exporter running in a task of their own, so an export (slow, failing, or a collector that is not
/// there) never holds a call. The processor's queue is bounded (`queue_size`); what it drops, and every batch an
/// export loses, is counted in `kgw_trace_spans_dropped_total`.
final class GatewayTracing: Sendable {
    /// What `ProxyRuntime` is given.
    let tracing: CallTracing
    private let group: ServiceGroup
    private let task: Task<Void, Never>

    /// Starts the exporter for `settings` (enabled); spans made from here on are exported.
    init(settings: GatewayConfig.Tracing, nodeID: String, metrics: GatewayMetrics, logger: Logger) throws {
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.resourceAttributes = ["service.instance.id": nodeID]
        let diagnostics = ExportDiagnostics(logger: logger, factory: metrics.factory)
        configuration.diagnosticLogger = .custom(Logger(label: "tracing-export") { _ in diagnostics })
        configuration.propagators = [.traceContext]
        // The gateway decides sampling before any span exists (`TraceSampling`); the tracer keeps what it is given.
        configuration.traces.sampler = .alwaysOn
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = settings.endpoint
        configuration.traces.otlpExporter.protocol = settings.protocol == "http/json" ? .httpJSON : .httpProtobuf
        configuration.traces.otlpExporter.timeout = .milliseconds(settings.exportTimeoutMs)
        configuration.traces.batchSpanProcessor.maxQueueSize = settings.queueSize
        configuration.traces.batchSpanProcessor.maxExportBatchSize = settings.batchSize
        configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(settings.exportIntervalMs)
        configuration.traces.batchSpanProcessor.exportTimeout = .milliseconds(settings.exportTimeoutMs)
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        let (tracer, service) = try OTel.makeTracingBackend(configuration: configuration)
        tracing = CallTracing(tracer: tracer, sampling: settings.sampling.policy)
        // No signal handlers: the gateway's own shutdown stops this group, after the calls in flight ended.
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [], logger: logger))
        self.group = group
        task = Task { try? await group.run() }
    }

    /// Sends what is queued (within the export timeout) and stops.
    func stop() async {
        await group.triggerGracefulShutdown()
        await task.value
    }
}

/// The exporter's own log: passed on to the gateway's logger, and its reports of lost spans counted. swift-otel
/// reports a full queue ("Spans were dropped…", `dropped_count`) and a failed export ("Failed to export batch.",
/// with the batch's `batch_size`) only as log lines, so this is where they become metrics.
struct ExportDiagnostics: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    private let logger: Logger
    private let queueFull: Counter
    private let exportFailed: Counter
    private let failures: Counter

    init(logger: Logger, factory: any MetricsFactory) {
        self.logger = logger
        queueFull = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "queue_full")], factory: factory)
        exportFailed = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "export_failed")], factory: factory)
        failures = Counter(label: "kgw_trace_exports_failed_total", factory: factory)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        func count(_ key: String) -> Int { merged[key].flatMap { Int("\($0)") } ?? 0 }
        if event.message.description.hasPrefix("Spans were dropped") {
            queueFull.increment(by: count("dropped_count"))
        } else if event.message.description.hasPrefix("Failed to export batch") {
            failures.increment()
            exportFailed.increment(by: count("batch_size"))
        }
        logger.log(level: event.level, "tracing export: \(event.message)", metadata: merged)
    }
}
