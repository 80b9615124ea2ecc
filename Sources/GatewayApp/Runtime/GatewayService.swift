import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The running gateway: listeners, the snapshot and its reload loop, upstream pool upkeep.
///
/// Reload rebuilds the whole snapshot off the event loops when the store generation or a policy file changes,
/// and swaps it in; a snapshot that fails to build (a bad policy file, a secret that will not open) is logged and
/// the running one stays.
public final class GatewayService: Service, Sendable {
    /// The loaded configuration.
    public let config: GatewayConfig
    /// The data plane's shared state.
    public let runtime: ProxyRuntime
    private let server: IngressServer
    private let credentials: any CredentialSource
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let state: ReloadState

    /// The store generation the snapshot in force was built from.
    public var snapshotGeneration: Int64 { state.generation }

    /// Bound ports by listener name.
    public var ports: [String: Int] { server.boundPorts }

    /// Builds the first snapshot and binds every listener.
    public static func start(
        config: GatewayConfig, credentials: any CredentialSource, journal: any CallJournal, logger: Logger,
        threads: Int = System.coreCount
    ) async throws -> GatewayService {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let state = ReloadState()
            let snapshot = try await Self.buildSnapshot(config: config, credentials: credentials, state: state)
            let unknownFamilies = Set((config.upstream.timeouts.families ?? [:]).keys).subtracting(snapshot.catalogue.families)
            if let family = unknownFamilies.sorted().first {
                throw ConfigError(source: "upstream.timeouts.families", reason: "'\(family)' is not an operation family of the catalogue")
            }
            let upstreamCA = try config.upstream.caFile.map { try String(contentsOfFile: config.resolve($0), encoding: .utf8) }
            let runtime = try ProxyRuntime(
                snapshots: SnapshotHolder(snapshot), group: group, upstreamCAPEM: upstreamCA,
                limits: IngressLimits(
                    maxBodyBytes: config.limits.maxBodyBytes, maxHeaderBytes: config.limits.maxHeaderBytes,
                    maxHeadersTotalBytes: config.limits.maxHeadersTotalBytes, maxHeldResponseBytes: config.limits.maxHeldResponseBytes,
                    maxInFlightRequests: config.limits.maxInFlightRequests, maxConnections: config.limits.maxConnections),
                resilience: config.resiliencePolicy,
                maxIdlePerKey: config.upstream.maxIdlePerKey, journal: journal, logger: logger
            )
            let listeners = try config.listeners.map { try ListenerFactory.spec(for: $0, config: config) }
            let server = try await IngressServer.start(listeners: listeners, runtime: runtime, group: group)
            logger.notice(
                "gateway started",
                metadata: ["node": "\(config.nodeID)", "snapshot": "\(snapshot.version)", "merchants": "\(snapshot.merchants.count)",
                           "partners": "\(snapshot.partners.count)", "callers": "\(snapshot.callersByTokenID.count)"])
            return GatewayService(config: config, runtime: runtime, server: server, credentials: credentials, group: group, logger: logger, state: state)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(
        config: GatewayConfig, runtime: ProxyRuntime, server: IngressServer, credentials: any CredentialSource,
        group: MultiThreadedEventLoopGroup, logger: Logger, state: ReloadState
    ) {
        self.config = config
        self.runtime = runtime
        self.server = server
        self.credentials = credentials
        self.group = group
        self.logger = logger
        self.state = state
    }

    /// Called once when `run()` starts, that is once a service group has installed its signal handlers, so a
    /// supervisor told "ready" can already stop the gateway gracefully.
    public let onRunning = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// Polls for changes until graceful shutdown, then stops.
    public func run() async throws {
        onRunning.withLockedValue { $0 }?()
        let interval = Duration.milliseconds(max(50, config.reloadIntervalMs))
        await withGracefulShutdownHandler {
            var ticks = 0
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: interval)
                await reloadIfChanged()
                ticks += 1
                if ticks % max(1, Int(10_000 / max(50, config.reloadIntervalMs))) == 0 {
                    runtime.pruneUpstreamConnections()
                    runtime.sweepRateLimits()
                }
            }
        } onGracefulShutdown: {
            self.logger.notice("graceful shutdown requested")
        }
        await shutdown()
    }

    /// Rebuilds the snapshot when the store or a policy file changed since the last build.
    public func reloadIfChanged() async {
        do {
            let generation = try await credentials.generation()
            let policyStamp = ReloadState.stamp(of: config.policies.files.map(config.resolve))
            guard state.isStale(generation: generation, policyStamp: policyStamp) else { return }
            try await reload()
        } catch {
            logger.error("reload failed; the running configuration stays", metadata: ["error": "\(error)"])
        }
    }

    /// Rebuilds the snapshot now.
    public func reload() async throws {
        let snapshot = try await Self.buildSnapshot(config: config, credentials: credentials, state: state)
        runtime.snapshots.replace(with: snapshot)
        logger.notice("configuration reloaded", metadata: ["snapshot": "\(snapshot.version)", "merchants": "\(snapshot.merchants.count)"])
    }

    /// Stops accepting, closes pooled connections and the event loops.
    public func shutdown() async {
        await server.stopAccepting()
        runtime.closeUpstreamConnections()
        try? await group.shutdownGracefully()
        logger.notice("gateway stopped")
    }

    static func buildSnapshot(config: GatewayConfig, credentials: any CredentialSource, state: ReloadState) async throws -> GatewaySnapshot {
        let policyStamp = ReloadState.stamp(of: config.policies.files.map(config.resolve))
        let catalogue = try PolicyLoader.loadCatalogue(path: config.resolve(config.catalogue))
        let access = try PolicyLoader.loadAccess(path: config.resolve(config.policies.access), catalogue: catalogue)
        let rateLimits = try config.policies.rateLimits.map {
            try PolicyLoader.loadRateLimits(path: config.resolve($0), catalogue: catalogue)
        } ?? .klarnaDefaults
        let releases = try config.policies.releases.map {
            try PolicyLoader.loadReleases(path: config.resolve($0), catalogue: catalogue)
        } ?? .klarnaCalendar
        let loaded = try await credentials.load()
        let snapshot = GatewaySnapshot(
            partners: loaded.partners, merchants: loaded.merchants, callers: loaded.callers, access: access,
            catalogue: catalogue, settings: config.pipelineSettings, rateLimits: rateLimits,
            releases: releases, rollouts: loaded.rollouts, version: state.nextVersion()
        )
        state.built(generation: loaded.generation, policyStamp: policyStamp)
        return snapshot
    }
}

/// What the last snapshot was built from, to tell whether a reload is due.
final class ReloadState: Sendable {
    private struct Inputs: Equatable {
        var generation: Int64 = -1
        var policyStamp: String = ""
        var version: Int64 = 0
    }

    private let inputs = NIOLockedValueBox<Inputs>(Inputs())

    func isStale(generation: Int64, policyStamp: String) -> Bool {
        inputs.withLockedValue { $0.generation != generation || $0.policyStamp != policyStamp }
    }

    func built(generation: Int64, policyStamp: String) {
        inputs.withLockedValue {
            $0.generation = generation
            $0.policyStamp = policyStamp
        }
    }

    var generation: Int64 { inputs.withLockedValue { $0.generation } }

    func nextVersion() -> Int64 {
        inputs.withLockedValue {
            $0.version += 1
            return $0.version
        }
    }

    /// Modification times and sizes of files: cheap to read every tick, changes on every edit that matters.
    static func stamp(of paths: [String]) -> String {
        paths.map { path in
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return "missing" }
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(modified):\(attributes[.size] as? Int ?? 0)"
        }.joined(separator: "|")
    }
}
