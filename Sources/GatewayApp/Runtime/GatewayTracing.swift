import AsyncHTTPClient
import CoreMetrics
import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOCore
import NIOConcurrencyHelpers
import NIOHTTP1
import NIOSSL
import Synchronization

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
                    exporter.flushDue()
                    wakeup.yield()
                }
            }
            for await _ in wakeups { await exporter.exportWaiting() }
            ticker.cancel()
            // The stop: what the last calls left is sent, then the client closes.
            exporter.flushDue()
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
    /// The POST every export sends, its URL parsed once; nil when the endpoint is no URL (every export then fails
    /// and is counted, as it did when the URL was parsed per request).
    private let template: HTTPClient.Request?
    private let timeout: TimeAmount
    private let client: HTTPClient
    private let logger: Logger
    private let queueFull: Counter
    private let exportFailed: Counter
    private let failures: Counter
    /// Set by the interval's timer and the stop: the next export sends a last batch smaller than `batch_size`.
    private let flush = Atomic<Bool>(false)
    /// Spans of a batch not yet full, kept from the previous export until more arrive or the interval ends, so a
    /// wake-up at `batch_size` sends one full request instead of a full one and a small one (each request costs
    /// async-http-client's fixed setup). Held by the one exporting task; at most `batch_size` - 1 spans.
    private let carry = NIOLockedValueBox<[OTLPExportRequest.SpanRun]>([])

    init(
        settings: GatewayConfig.Tracing, request: OTLPExportRequest, queue: SpanQueue, options: OTLPEnvironment,
        factory: any MetricsFactory, logger: Logger
    ) throws {
        self.queue = queue
        self.request = request
        json = settings.protocol == "http/json"
        timeout = .milliseconds(Int64(settings.exportTimeoutMs))
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: json ? "application/json" : "application/x-protobuf")
        for (name, value) in options.headers { headers.add(name: name, value: value) }
        let tls = settings.endpoint.hasPrefix("https:") ? try options.tlsConfiguration() : nil
        template = try? HTTPClient.Request(url: settings.endpoint, method: .POST, headers: headers, tlsConfiguration: tls)
        self.logger = logger
        // Its own client on NIO's shared loops: export I/O never runs on the gateway's event loops. No tracer: the
        // default one (a no-op) still made async-http-client parse the URL again and set a span's attributes for
        // every export.
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.tracing.tracer = nil
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        queueFull = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "queue_full")], factory: factory)
        exportFailed = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "export_failed")], factory: factory)
        failures = Counter(label: "kgw_trace_exports_failed_total", factory: factory)
    }

    /// The next `exportWaiting()` sends everything, a last batch under `batch_size` included.
    func flushDue() { flush.store(true, ordering: .relaxed) }

    /// Exports every full batch waiting now, `batch_size` spans each, and what is left too when a flush is due;
    /// counts what the full queue dropped.
    func exportWaiting() async {
        let dropped = queue.takeDropped()
        if dropped > 0 {
            queueFull.increment(by: dropped)
            logger.warning("tracing export: spans were dropped, the queue is full", metadata: ["dropped_count": "\(dropped)", "queue_size": "\(queue.capacity)"])
        }
        let flushing = flush.exchange(false, ordering: .relaxed)
        let kept = carry.withLockedValue { kept in
            defer { kept = [] }
            return kept
        }
        let taken = queue.take()
        guard taken.count > 0 || !kept.isEmpty else { return }
        var batches = OTLPExportRequest.batches(kept + taken.runs, size: queue.batchSize)
        if !flushing, let last = batches.last, last.reduce(0, { $0 + $1.count }) < queue.batchSize {
            carry.withLockedValue { $0 = last }
            batches.removeLast()
        }
        for batch in batches { await send(batch) }
    }

    private func send(_ spans: [OTLPExportRequest.SpanRun]) async {
        let count = spans.reduce(0) { $0 + $1.count }
        let failure: String
        if var http = template {
            let body = json ? ByteBuffer(bytes: request.json(OTLPExportRequest.spans(of: spans))) : request.protobuf(spans)
            http.body = .byteBuffer(body)
            do {
                let response = try await client.execute(request: http, deadline: NIODeadline.now() + timeout).get()
                if (200..<300).contains(response.status.code) { return }
                failure = "HTTP \(response.status.code)"
            } catch {
                failure = String(describing: error)
            }
        } else {
            failure = String(describing: HTTPClientError.invalidURL)
        }
        failures.increment()
        exportFailed.increment(by: count)
        logger.warning("tracing export: failed to export batch", metadata: ["batch_size": "\(count)", "error": "\(failure)"])
    }

    func close() async { try? await client.shutdown() }
}
