import Foundation
import GatewayCore
import GatewayPolicy
import GatewayProxy
import GatewayWebhooks
import Logging
import NIOCore

extension GatewayService {
    /// Starts the webhook path when the config uses it (a listener marked `klarna_webhooks`, or routes to deliver):
    /// its first directory is loaded like the first snapshot, so a bad key or route stops the start.
    static func startWebhooks(
        config: GatewayConfig, credentials: any CredentialSource, runtime: ProxyRuntime, journal: any CallJournal, metrics: GatewayMetrics,
        group: any EventLoopGroup, logger: Logger
    ) async throws -> WebhookRuntime? {
        guard config.receivesWebhooks || config.policies.webhooks != nil else { return nil }
        guard let store = credentials.webhookStore else {
            throw ConfigError(source: "storage", reason: "webhooks need the gateway's store (SQLite or PostgreSQL)")
        }
        let directory = try await credentials.loadWebhookDirectory(routesPath: config.policies.webhooks.map(config.resolve))
        let trustRoots: String?
        do {
            trustRoots = try config.webhooks.caFile.map { try String(contentsOfFile: config.resolve($0), encoding: .utf8) }
        } catch {
            throw ConfigError(source: config.resolve(config.webhooks.caFile ?? ""), reason: "webhooks.ca_file: cannot read (\(error.localizedDescription))")
        }
        let listeners = try config.listeners.filter { $0.klarnaWebhooks == true }.map { try ListenerFactory.spec(for: $0, config: config) }
        return try await WebhookRuntime.start(
            listeners: listeners, directory: directory, store: store, snapshots: runtime.snapshots, journal: journal,
            metrics: WebhookMetrics(factory: metrics.factory), settings: config.webhooks.deliverySettings(trustRootsPEM: trustRoots),
            nodeID: config.nodeID, group: group, maxConnections: config.limits.maxConnections, logger: logger)
    }
}
