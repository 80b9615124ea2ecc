import Foundation
import GatewayCore
import GatewayPolicy
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

    /// Open and refused ingress connections.
    public var ingressConnections: IngressConnectionLimit { server.connectionLimit }

    /// Builds the first snapshot and binds every listener.
    public static func start(
        config: GatewayConfig, credentials: any CredentialSource, journal: any CallJournal, logger: Logger,
        threads: Int = System.coreCount
    ) async throws -> GatewayService {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let state = ReloadState()
            let snapshot = try await Self.buildSnapshot(config: config, credentials: credentials, state: state)
            let upstreamCA = try config.upstream.caFile.map { try String(contentsOfFile: config.resolve($0), encoding: .utf8) }
            let runtime = try ProxyRuntime(
                snapshots: SnapshotHolder(snapshot), group: group, upstreamCAPEM: upstreamCA,
                limits: IngressLimits(
                    maxBodyBytes: config.limits.maxBodyBytes, maxHeaderBytes: config.limits.maxHeaderBytes,
                    maxHeadersTotalBytes: config.limits.maxHeadersTotalBytes, maxHeldResponseBytes: config.limits.maxHeldResponseBytes,
                    headerReadTimeout: .milliseconds(Int64(config.limits.headerReadTimeoutMs)),
                    idleTimeout: .milliseconds(Int64(config.limits.idleTimeoutMs)), maxConnections: config.limits.maxConnections),
                connectTimeout: .milliseconds(Int64(config.upstream.connectTimeoutMs)),
                responseTimeout: .milliseconds(Int64(config.upstream.responseTimeoutMs)),
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

    /// Reloads on every change until graceful shutdown, then stops.
    ///
    /// Two things wake the reload: a store that pushes changes (PostgreSQL's LISTEN/NOTIFY, so every instance
    /// reloads within milliseconds of a commit), and the poll interval, which also catches policy-file edits
    /// and covers a lost notification connection. Reloads run one at a time, in this loop only, so an older
    /// snapshot can never replace a newer one.
    public func run() async throws {
        onRunning.withLockedValue { $0 }?()
        let interval = Duration.milliseconds(max(50, config.reloadIntervalMs))
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        wake.yield()
                    }
                }
                group.addTask { [credentials, logger] in
                    do {
                        if try await credentials.watchChanges({ wake.yield() }) == false { return }
                    } catch {
                        logger.warning("store change notifications stopped; polling only", metadata: ["error": "\(error)"])
                    }
                }
                let clock = ContinuousClock()
                var lastUpkeep = clock.now
                for await _ in wakes {
                    if Task.isCancelled || Task.isShuttingDownGracefully { break }
                    await reloadIfChanged()
                    if clock.now - lastUpkeep >= .seconds(10) {
                        lastUpkeep = clock.now
                        runtime.pruneUpstreamConnections()
                        runtime.sweepRateLimits()
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.logger.notice("graceful shutdown requested")
            wake.finish()
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
