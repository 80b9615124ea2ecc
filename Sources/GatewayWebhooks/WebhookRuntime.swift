import GatewayCore
import GatewayProxy
import Logging
import NIOCore

/// The webhook path as the gateway runs it: the directory in force, the listeners, the intake and the delivery
/// worker, started and stopped together.
public final class WebhookRuntime: Sendable {
    /// Keys, routes and destinations in force.
    public let directory: WebhookDirectoryHolder
    /// The delivery worker (its `run()` is the caller's to schedule).
    public let worker: WebhookDeliveryWorker
    private let server: WebhookServer?

    /// Bound ports of the webhook listeners, by name.
    public var boundPorts: [String: Int] { server?.boundPorts ?? [:] }

    /// The listeners' TLS contexts, for the gateway's reload; nil when this instance has no webhook listener.
    public var tlsContexts: ListenerTLSContexts? { server?.tlsContexts }

    /// Connections the listeners closed at their connection limit since start; nil without a listener.
    public var refusedConnections: Int? { server?.connectionLimit.refused }

    private init(directory: WebhookDirectoryHolder, worker: WebhookDeliveryWorker, server: WebhookServer?) {
        self.directory = directory
        self.worker = worker
        self.server = server
    }

    /// Binds the webhook listeners (none is fine: an instance may only deliver) and makes the worker.
    public static func start(
        listeners: [ListenerSpec], directory initial: WebhookDirectory, store: any WebhookStore, snapshots: SnapshotHolder, journal: any CallJournal,
        metrics: WebhookMetrics, settings: WebhookDeliverySettings, nodeID: String, group: any EventLoopGroup, maxConnections: Int = 10_000,
        logger: Logger
    ) async throws -> WebhookRuntime {
        // Leases this node held before it stopped (or was killed) are its own: take them back at once rather than
        // waiting for them to run out.
        try await store.releaseWebhookLeases(owner: nodeID)
        let directory = WebhookDirectoryHolder(initial)
        let worker = WebhookDeliveryWorker(
            store: store, directory: directory, journal: journal, metrics: metrics, settings: settings, nodeID: nodeID, group: group, logger: logger)
        var server: WebhookServer?
        if !listeners.isEmpty {
            let intake = WebhookIntake(store: store, onStored: { worker.wake() })
            let receiver = WebhookReceiver(directory: directory, snapshots: snapshots, intake: intake, journal: journal, metrics: metrics, logger: logger)
            do {
                server = try await WebhookServer.start(listeners: listeners, receiver: receiver, group: group, maxConnections: maxConnections)
            } catch {
                await worker.stop()
                throw error
            }
            for (name, port) in server?.boundPorts ?? [:] {
                logger.notice("listening for Klarna webhooks", metadata: ["listener": "\(name)", "port": "\(port)"])
            }
        }
        return WebhookRuntime(directory: directory, worker: worker, server: server)
    }

    /// Stops accepting webhooks and stops the worker (attempts in flight finish).
    public func stop() async {
        await server?.stop()
        await worker.stop()
    }
}
