import AsyncHTTPClient
import CoreMetrics
import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOCore
import NIOSSL

/// The OTLP/HTTP span export behind `tracing:`: the data plane's `CallTracing` and the exporter that drains its
/// `SpanQueue` in a task of its own, every `export_interval_ms` or as soon as `batch_size` spans wait, POSTing
/// `ExportTraceServiceRequest`s (protobuf or JSON) with `export_timeout_ms`. An export that fails or times out
/// loses its spans and is counted; a call never waits for any of it. Written for the gateway instead of using
/// swift-otel, whose per-span objects, locks and task wake-ups cost a traced call about 360 µs of CPU
/// (docs/observability.md, "Why not swift-otel").
final class GatewayTracing: Sendable {
    /// What `ProxyRuntime` is given.
    let tracing: CallTracing
    private let exporter: TraceExporter
    private let task: Task<Void, Never>
    /// Finishing it ends the exporter's loop.
    private let stopper: AsyncStream<Void>.Continuation

    /// Starts the exporter for `settings` (enabled); spans ended from here on are exported.
    init(settings: GatewayConfig.Tracing, nodeID: String, metrics: GatewayMetrics, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let queue = SpanQueue(capacity: settings.queueSize, batchSize: settings.batchSize) { wakeup.yield() }
        tracing = CallTracing(sampling: settings.sampling.policy, spans: queue)
        let exporter = try TraceExporter(
            settings: settings, request: OTLPExportRequest(serviceName: settings.serviceName, instanceID: nodeID), queue: queue,
            options: OTLPEnvironment(environment), factory: metrics.factory, logger: logger)
        self.exporter = exporter
        let interval = Duration.milliseconds(settings.exportIntervalMs)
        task = Task {
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    wakeup.yield()
                }
            }
            for await _ in wakeups { await exporter.exportWaiting() }
            ticker.cancel()
            // The stop: what the last calls left is sent, then the client closes.
            await exporter.exportWaiting()
            await exporter.close()
        }
        stopper = wakeup
    }

    /// Sends what is queued (within the export timeout) and stops.
    func stop() async {
        stopper.finish()
        await task.value
    }
}

/// Takes the queue's spans and POSTs them, `batch_size` spans a request. Used by one task at a time.
final class TraceExporter: Sendable {
    private let queue: SpanQueue
    private let request: OTLPExportRequest
    private let json: Bool
    private let endpoint: String
    private let timeout: TimeAmount
    private let options: OTLPEnvironment
    private let tls: TLSConfiguration?
    private let client: HTTPClient
    private let logger: Logger
    private let queueFull: Counter
    private let exportFailed: Counter
    private let failures: Counter

    init(
        settings: GatewayConfig.Tracing, request: OTLPExportRequest, queue: SpanQueue, options: OTLPEnvironment,
        factory: any MetricsFactory, logger: Logger
    ) throws {
        self.queue = queue
        self.request = request
        json = settings.protocol == "http/json"
        endpoint = settings.endpoint
        timeout = .milliseconds(Int64(settings.exportTimeoutMs))
        self.options = options
        tls = settings.endpoint.hasPrefix("https:") ? try options.tlsConfiguration() : nil
        self.logger = logger
        // Its own client on NIO's shared loops: export I/O never runs on the gateway's event loops.
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        queueFull = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "queue_full")], factory: factory)
        exportFailed = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "export_failed")], factory: factory)
        failures = Counter(label: "kgw_trace_exports_failed_total", factory: factory)
    }

    /// Exports every span waiting now, `batch_size` at a time, and counts what the full queue dropped.
    func exportWaiting() async {
        let dropped = queue.takeDropped()
        if dropped > 0 {
            queueFull.increment(by: dropped)
            logger.warning("tracing export: spans were dropped, the queue is full", metadata: ["dropped_count": "\(dropped)", "queue_size": "\(queue.capacity)"])
        }
        let taken = queue.take()
        guard taken.count > 0 else { return }
        let spans = OTLPExportRequest.spans(of: taken)
        var start = 0
        while start < spans.count {
            let batch = spans[start..<min(spans.count, start + queue.batchSize)]
            start += batch.count
            await send(batch)
        }
    }

    private func send(_ spans: ArraySlice<ArraySlice<UInt8>>) async {
        var http = HTTPClientRequest(url: endpoint)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: json ? "application/json" : "application/x-protobuf")
        for (name, value) in options.headers { http.headers.add(name: name, value: value) }
        http.body = .bytes(ByteBuffer(bytes: json ? request.json(spans) : request.protobuf(spans)))
        if let tls { http.tlsConfiguration = tls }
        let failure: String
        do {
            let response = try await client.execute(http, timeout: timeout)
            _ = try? await response.body.collect(upTo: 1 << 20)
            if (200..<300).contains(response.status.code) { return }
            failure = "HTTP \(response.status.code)"
        } catch {
            failure = String(describing: error)
        }
        failures.increment()
        exportFailed.increment(by: spans.count)
        logger.warning("tracing export: failed to export batch", metadata: ["batch_size": "\(spans.count)", "error": "\(failure)"])
    }

    func close() async { try? await client.shutdown() }
}
