import CoreMetrics
import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOCore
import NIOConcurrencyHelpers
import NIOPosix

/// The OTLP/HTTP span export behind `tracing:`: the data plane's `CallTracing` and the exporter that drains its
/// `SpanQueue` on one of NIO's shared loops, every `export_interval_ms` or as soon as `batch_size` spans wait, POSTing
/// `ExportTraceServiceRequest`s (protobuf or JSON) with `export_timeout_ms`. An export that fails or times out
/// loses its spans and is counted; a call never waits for any of it. Written for the gateway instead of using
/// swift-otel, whose per-span objects, locks and task wake-ups cost a traced call about 360 µs of CPU
/// (docs/observability.md, "Why not swift-otel").
final class GatewayTracing: Sendable {
    /// What `ProxyRuntime` is given.
    let tracing: CallTracing
    private let exporter: TraceExporter
    private let ticker: RepeatedTask

    /// Starts the exporter for `settings` (enabled); spans ended from here on are exported.
    init(settings: GatewayConfig.Tracing, nodeID: String, metrics: GatewayMetrics, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        // NIO's shared loops, as async-http-client's were: export I/O never runs on the gateway's event loops.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        // The queue wakes the exporter once per `batch_size` spans; the exporter is made after the queue it drains.
        let target = NIOLockedValueBox<TraceExporter?>(nil)
        let queue = SpanQueue(capacity: settings.queueSize, batchSize: settings.batchSize) {
            target.withLockedValue { $0 }?.wake()
        }
        tracing = CallTracing(sampling: settings.sampling.policy, spans: queue)
        let exporter = try TraceExporter(
            settings: settings, request: OTLPExportRequest(serviceName: settings.serviceName, instanceID: nodeID), queue: queue,
            options: OTLPEnvironment(environment), factory: metrics.factory, logger: logger, loop: loop)
        target.withLockedValue { $0 = exporter }
        self.exporter = exporter
        let interval = TimeAmount.milliseconds(Int64(settings.exportIntervalMs))
        ticker = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in exporter.tick() }
    }

    /// Sends what is queued (each request within the export timeout) and stops.
    func stop() async {
        ticker.cancel()
        try? await exporter.stop().get()
    }
}

/// Takes the queue's spans and POSTs them, `batch_size` spans a request, one request at a time: while one is out, the
/// spans ended meanwhile wait in the bounded queue, so a slow collector fills the queue (and drops are counted) rather
/// than the process. Confined to its loop, with no task of its own: a wake-up is one `execute` on that loop.
///
/// `@unchecked Sendable` because its state is touched only on `loop`.
final class TraceExporter: @unchecked Sendable {
    private let queue: SpanQueue
    private let request: OTLPExportRequest
    private let json: Bool
    /// Nil when the endpoint is no http(s) URL: every export then fails and is counted.
    private let client: OTLPCollectorClient?
    private let loop: any EventLoop
    private let logger: Logger
    private let queueFull: Counter
    private let exportFailed: Counter
    private let failures: Counter
    /// Set by the interval's tick: the next take sends a last batch smaller than `batch_size`.
    private var flushDue = false
    /// Spans of a batch not yet full, kept from the previous take until more arrive or the interval ends, so a
    /// wake-up at `batch_size` sends one full request instead of a full one and a small one. At most `batch_size` - 1.
    private var carry: [OTLPExportRequest.SpanRun] = []
    /// Batches taken and not yet sent; nothing more is taken from the queue until they are.
    private var outbox: ArraySlice<[OTLPExportRequest.SpanRun]> = []
    private var sending = false
    /// Completed when a stop has sent everything.
    private var stopped: EventLoopPromise<Void>?
    /// Stopped: wake-ups from calls still ending are ignored.
    private var finished = false

    init(
        settings: GatewayConfig.Tracing, request: OTLPExportRequest, queue: SpanQueue, options: OTLPEnvironment,
        factory: any MetricsFactory, logger: Logger, loop: any EventLoop
    ) throws {
        self.queue = queue
        self.request = request
        self.loop = loop
        json = settings.protocol == "http/json"
        let timeout = TimeAmount.milliseconds(Int64(settings.exportTimeoutMs))
        let headers = [("Content-Type", json ? "application/json" : "application/x-protobuf")] + options.headers
        client = try OTLPCollectorClient.Endpoint(settings.endpoint).map { endpoint in
            try OTLPCollectorClient(
                endpoint: endpoint, headers: headers, tls: endpoint.tls ? try options.tlsConfiguration() : nil, timeout: timeout, loop: loop)
        }
        self.logger = logger
        queueFull = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "queue_full")], factory: factory)
        exportFailed = Counter(label: "kgw_trace_spans_dropped_total", dimensions: [("reason", "export_failed")], factory: factory)
        failures = Counter(label: "kgw_trace_exports_failed_total", factory: factory)
    }

    /// `batch_size` spans wait, or the full queue dropped one: export (from any thread).
    func wake() { loop.execute { self.exportWaiting() } }

    /// The interval is over: everything waiting goes out, a batch under `batch_size` included.
    func tick() {
        flushDue = true
        exportWaiting()
    }

    /// Sends everything still queued, then closes the connection.
    func stop() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            if self.finished { return self.loop.makeSucceededVoidFuture() }
            let promise = self.stopped ?? self.loop.makePromise()
            self.stopped = promise
            self.exportWaiting()
            return promise.futureResult
        }
    }

    /// Sends the next batch unless one is out; takes the queue's spans when every batch taken has been sent.
    private func exportWaiting() {
        guard !sending, !finished else { return }
        countDropped()
        // A loop, not a call from each export's completion: batches that fail at once (no URL) must not nest.
        while true {
            if outbox.isEmpty { take() }
            guard let batch = outbox.popFirst() else { break }
            let count = batch.reduce(0) { $0 + $1.count }
            guard let client else {
                failed(count, because: "the endpoint is not an http:// or https:// URL")
                continue
            }
            sending = true
            send(batch, count: count, to: client).assumeIsolated().whenComplete { _ in
                self.sending = false
                self.exportWaiting()
            }
            return
        }
        if let stopped = stopped.take() {
            finished = true
            client?.close()
            stopped.succeed()
        }
    }

    private func countDropped() {
        let dropped = queue.takeDropped()
        guard dropped > 0 else { return }
        queueFull.increment(by: dropped)
        logger.warning("tracing export: spans were dropped, the queue is full", metadata: ["dropped_count": "\(dropped)", "queue_size": "\(queue.capacity)"])
    }

    /// Every full batch waiting now, `batch_size` spans each, and what is left too when a flush is due.
    private func take() {
        let flushing = flushDue || stopped != nil
        flushDue = false
        let taken = queue.take()
        guard taken.count > 0 || !carry.isEmpty else { return }
        var batches = OTLPExportRequest.batches(carry + taken.runs, size: queue.batchSize)
        carry = []
        if !flushing, let last = batches.last, last.reduce(0, { $0 + $1.count }) < queue.batchSize {
            carry = last
            batches.removeLast()
        }
        outbox = batches[...]
    }

    private func send(_ spans: [OTLPExportRequest.SpanRun], count: Int, to client: OTLPCollectorClient) -> EventLoopFuture<Void> {
        let body = json ? ByteBuffer(bytes: request.json(OTLPExportRequest.spans(of: spans))) : request.protobuf(spans)
        return client.post(body).assumeIsolated().map { status in
            if !(200..<300).contains(status.code) { self.failed(count, because: "HTTP \(status.code)") }
        }.recover { error in
            self.failed(count, because: String(describing: error))
        }.nonisolated()
    }

    private func failed(_ count: Int, because failure: String) {
        failures.increment()
        exportFailed.increment(by: count)
        logger.warning("tracing export: failed to export batch", metadata: ["batch_size": "\(count)", "error": "\(failure)"])
    }
}
