import GatewayAudit
import GatewayCore
import GatewayProxy
import NIOCore
import Prometheus

/// `/metrics`: has every event loop hand over the calls it counted, samples what is read rather than counted (pools,
/// audit queue, rate-limit totals, reloads) into the gateway's metrics, then renders the registry in Prometheus
/// text format.
public enum MetricsExposition {
    /// The admin route for a gateway whose metrics were made with a factory over `registry`.
    public static func route(
        registry: PrometheusCollectorRegistry, service: GatewayService, audit: AuditWriter?
    ) -> @Sendable (any EventLoop) -> EventLoopFuture<String> {
        { eventLoop in
            let drained = service.runtime.upstreamDrained(on: eventLoop)
            let flushed = service.runtime.flushMetrics(on: eventLoop)
            return service.runtime.upstreamConnectionCounts(on: eventLoop).and(drained).and(flushed).map { counted, _ in
                let (connections, drained) = counted
                var sample = MetricsSample()
                sample.upstreamConnections = connections
                sample.drainedConnections = drained
                if let health = audit?.health {
                    sample.auditQueueDepth = health.queueDepth
                    sample.auditHealthy = health.isHealthy
                }
                sample.rateLimits = service.runtime.rateLimiter.counts
                sample.snapshotVersion = service.runtime.snapshots.current.version
                sample.reloads = service.reloadCounts
                sample.ingressConnections = service.openConnections
                sample.logLinesDropped = JSONLogHandler.droppedLines
                var refused = ["connection_limit": service.ingressConnections.refused]
                for reason in ConnectionRefusals.Reason.allCases {
                    refused[reason.rawValue] = service.runtime.connectionRefusals.count(of: reason)
                }
                sample.connectionRefusals = refused
                sample.webhookConnectionsRefused = service.webhooks?.refusedConnections
                if let quota = service.quota, let status = quota.limiter.quotaStatus { sample.quota = (status, quota.counters) }
                service.runtime.metrics.record(sample)
                return registry.emitToString()
            }
        }
    }
}
