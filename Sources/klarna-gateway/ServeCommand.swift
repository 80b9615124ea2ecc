import ArgumentParser
import Foundation
import GatewayApp
import GatewayAudit
import GatewayCore
import GatewayProxy
import NIOPosix
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// `klarna-gateway serve`: run the gateway until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the gateway: listeners, reload loop, upstream pools.")

    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await reportingErrors {
            let configuration = try config.load(.serving)
            LoggingSystem.bootstrap(JSONLogHandler.init)
            // Lines are written by a thread of their own; whatever is still queued goes out before the process ends.
            defer { JSONLogHandler.flush() }
            JSONLogHandler.setLevel(Logger.Level(rawValue: configuration.logLevel) ?? .info)
            var logger = Logger(label: "klarna-gateway")
            logger[metadataKey: "node"] = "\(configuration.nodeID)"
            let credentials = try await CredentialLoader.open(config: configuration)
            let journals = try await CallJournals.open(config: configuration, credentials: credentials, logger: logger)
            let writer = journals.audit
            let journal = journals.journal
            if writer == nil { logger.warning("audit trail disabled (audit.enabled: false): calls are not recorded") }
            // One registry for the process: the gateway's own metrics and anything else made through swift-metrics
            // (the global factory, bootstrapped once, here) are exported together on /metrics.
            let registry = PrometheusCollectorRegistry()
            let factory = PrometheusMetricsFactory(registry: registry)
            MetricsSystem.bootstrap(factory)
            let metrics = GatewayMetrics(factory: factory, merchantLabels: configuration.metrics.merchantLabels)
            let service = try await GatewayService.start(
                config: configuration, credentials: credentials, journal: journal, logger: logger,
                configSource: .init(path: config.path), metrics: metrics)
            // SIGHUP reloads everything now; SIGTERM and SIGINT stay with the service group (graceful stop).
            signal(SIGHUP, SIG_IGN)
            let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            let signalLogger = logger
            hangup.setEventHandler {
                signalLogger.notice("SIGHUP: reloading configuration, policies and certificates")
                service.requestReload()
            }
            hangup.resume()
            defer { hangup.cancel() }
            var admin: AdminServer?
            if let address = configuration.admin {
                let audit = writer
                // The admin API writes through the same store and sealer the gateway reads, and records in its journal.
                let trail = audit.map { AdminAuditTrail(store: configuration.resolve(configuration.audit.path), writer: $0) }
                // No change-log event for the API's changes: it audits them itself, with the admin's name.
                let api = AdminAPI(
                    service: AdminService(store: credentials.store, sealer: credentials.sealer, changeActor: nil), gateway: service, audit: trail,
                    logger: logger)
                var routes = AdminRoutes(metrics: MetricsExposition.route(registry: registry, service: service, audit: audit), api: api)
                routes.logLevelChangeAllowed = ConfigLoader.isLoopback(address.address)
                routes.detailsNeedToken = !routes.logLevelChangeAllowed
                admin = try await AdminServer.start(
                    host: address.address, port: address.port, group: MultiThreadedEventLoopGroup.singleton, routes: routes,
                    tlsContexts: try AdminServer.tlsContexts(address, config: configuration, service: service)
                ) {
                    AdminServer.readiness(audit: audit, service: service)
                }
            }
            // One line on stdout whatever the log level, for scripts and supervisors waiting for readiness.
            var ports = service.ports.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            if let admin { ports.append("admin=\(admin.port)") }
            let line = "klarna-gateway serving \(ports.joined(separator: " "))\n"
            service.onRunning.withLockedValue { $0 = { FileHandle.standardOutput.write(Data(line.utf8)) } }
            // Changes made with the CLI (now, or while no gateway ran) go into this node's chain; only with a trail,
            // else they wait in the store for a node that has one.
            let recorder = (credentials.store as? any AdminEventAuditing).flatMap { store in
                writer.map { _ in
                    AdminEventRecorder(
                        store: store, node: configuration.nodeID, journal: journal,
                        interval: .milliseconds(max(50, min(configuration.reloadIntervalMs, 1000))), logger: logger)
                }
            }
            let recording = recorder.map { recorder in Task { await recorder.run() } }
            let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            let stopping = service.stopping
            if let recording {
                stopping.enter("the change-log recorder")
                recording.cancel()
                // Its work is safe to leave: this node's unfinished claims are recorded again at its next start.
                do {
                    try await withDeadline(.seconds(5), { AdminEventRecorder.Stuck() }) { await recording.value }
                } catch {
                    logger.warning("stopping without the change-log recorder, whose pass did not end within 5 s; its claims are recorded at the next start")
                }
            }
            stopping.enter("the admin listener")
            await admin?.stop()
            // Every record of every answered call is written before the process exits.
            stopping.enter("the audit writer: the last records and the final checkpoint")
            await writer?.shutdown()
            stopping.finish()
        }
    }
}
