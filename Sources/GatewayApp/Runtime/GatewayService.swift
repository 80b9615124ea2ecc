import Foundation
import GatewayCore
import GatewayPolicy
import GatewayProxy
import GatewayWebhooks
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The running gateway: listeners, the snapshot and its reload loop, upstream pool upkeep.
///
/// A reload (a changed store generation, a changed config/policy/catalogue/certificate file, or `requestReload()`
/// on SIGHUP) re-reads the config file and every file the snapshot is built from, off the event loops, and swaps
/// the result in only when all of it is valid; otherwise it logs what is wrong and the running configuration
/// stays. Settings that cannot change without a restart (listeners, storage, audit…) keep their running values,
/// and a changed one is logged as such.
public final class GatewayService: Service, Sendable {
    /// The configuration in force (the reloadable parts of the file as last reloaded).
    public var config: GatewayConfig { running.withLockedValue { $0 } }
    /// The data plane's shared state.
    public let runtime: ProxyRuntime
    /// Cluster mode's ledger client (PostgreSQL storage); nil for a single instance on SQLite.
    public let quota: QuotaLeaseDriver?
    /// The webhook path (listeners marked `klarna_webhooks`, the delivery worker); nil when webhooks are not used.
    public let webhooks: WebhookRuntime?
    /// The admin listener's TLS context, which `serve` fills from `admin.tls` and reloads replace with the
    /// listeners'; empty without an admin listener over TLS.
    public let adminTLSContexts = ListenerTLSContexts(offersHTTP2: false)
    /// What the stop waits on, logged while a step lasts (`serve` adds its own steps after the service's).
    public let stopping: ShutdownProgress
    private let server: IngressServer
    private let credentials: any CredentialSource
    private let group: MultiThreadedEventLoopGroup
    private let tracing: GatewayTracing?
    private let logger: Logger
    private let state: ReloadState
    private let source: ConfigSource?
    private let running: NIOLockedValueBox<GatewayConfig>
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// Where the config file is re-read from on reload, and the environment its overrides come from.
    public struct ConfigSource: Sendable {
        /// The config file.
        public var path: String
        /// `KGW_` overrides.
        public var environment: [String: String]

        /// Makes a source.
        public init(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
            self.path = path
            self.environment = environment
        }
    }

    /// The store generation the snapshot in force was built from.
    public var snapshotGeneration: Int64 { state.generation }

    /// Reloads applied and rejected since start.
    public var reloadCounts: (applied: Int, rejected: Int) { state.counts }

    /// Bound ports by listener name (the webhook listeners' too).
    public var ports: [String: Int] { server.boundPorts.merging(webhooks?.boundPorts ?? [:]) { first, _ in first } }

    /// Ingress connections currently open.
    public var openConnections: Int { server.openConnections }

    /// Open and refused ingress connections.
    public var ingressConnections: IngressConnectionLimit { server.connectionLimit }

    /// Builds the first snapshot and binds every listener. With `configSource`, reloads re-read that file;
    /// `threads` overrides the config's `event_loops`.
    public static func start(
        config: GatewayConfig, credentials: any CredentialSource, journal: any CallJournal, logger: Logger,
        threads: Int? = nil, configSource: ConfigSource? = nil, metrics: GatewayMetrics = .disabled
    ) async throws -> GatewayService {
        // `event_loops` unless the caller (a test, a benchmark) sets the count; 0 is one per core.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads ?? (config.eventLoops > 0 ? config.eventLoops : System.coreCount))
        var tracing: GatewayTracing?
        do {
            let state = ReloadState()
            let files = ReloadState.stamp(of: Self.watchedFiles(config: config, configPath: configSource?.path))
            let tls = ReloadState.stamp(of: Self.tlsFiles(config: config))
            let snapshot = try await Self.buildSnapshot(config: config, credentials: credentials, version: state.nextVersion(), logger: logger)
            state.built(ReloadState.Stamps(generation: snapshot.generation, files: files, tls: tls), counted: false)
            FreedMemory.returnToSystem()
            if let problem = config.unknownTimeoutFamilyProblem(catalogue: snapshot.snapshot.catalogue) { throw problem }
            let upstreamCA = try config.upstream.caFile.map { try String(contentsOfFile: config.resolve($0), encoding: .utf8) }
            if config.tracing.enabled {
                // The same environment the config's overrides came from, so a test or an embedding process that gives
                // its own sees the collector's `OTEL_EXPORTER_OTLP_*` settings as `serve` sees its process's.
                tracing = try GatewayTracing(
                    settings: config.tracing, nodeID: config.nodeID, metrics: metrics, logger: logger,
                    environment: configSource?.environment ?? ProcessInfo.processInfo.environment)
            }
            let runtime = try ProxyRuntime(
                snapshots: SnapshotHolder(snapshot.snapshot), group: group, upstreamCAPEM: upstreamCA,
                limits: IngressLimits(
                    maxBodyBytes: config.limits.maxBodyBytes, maxHeaderBytes: config.limits.maxHeaderBytes,
                    maxHeadersTotalBytes: config.limits.maxHeadersTotalBytes, maxHeldResponseBytes: config.limits.maxHeldResponseBytes,
                    headerReadTimeout: .milliseconds(Int64(config.limits.headerReadTimeoutMs)),
                    idleTimeout: .milliseconds(Int64(config.limits.idleTimeoutMs)),
                    maxInFlightRequests: config.limits.maxInFlightRequests, maxConnections: config.limits.maxConnections),
                resilience: config.resiliencePolicy,
                maxIdlePerKey: config.upstream.maxIdlePerKey, journal: journal, logger: logger, metrics: metrics,
                cluster: config.storageIsPostgres ? config.quotaLeasing.limiterSettings : nil, tracing: tracing?.tracing
            )
            let quota = try await Self.startQuotaLeasing(config: config, runtime: runtime, environment: configSource?.environment, logger: logger)
            runtime.drainRetiredIdentities(drain: .seconds(Int64(config.upstream.drainSeconds)))
            let listeners = try config.listeners.filter { $0.klarnaWebhooks != true }.map { try ListenerFactory.spec(for: $0, config: config) }
            let webhooks = try await Self.startWebhooks(
                config: config, credentials: credentials, runtime: runtime, journal: journal, metrics: metrics, group: group, logger: logger)
            let server: IngressServer
            do {
                server = try await IngressServer.start(listeners: listeners, runtime: runtime, group: group)
            } catch {
                await webhooks?.stop()
                throw error
            }
            logger.notice(
                "gateway started",
                metadata: ["node": "\(config.nodeID)", "snapshot": "\(snapshot.snapshot.version)", "merchants": "\(snapshot.snapshot.merchants.count)",
                           "partners": "\(snapshot.snapshot.partners.count)", "callers": "\(snapshot.snapshot.callersByTokenID.count)",
                           "access_policy": "\(snapshot.policyOrigins["access"] ?? "-")",
                           "rate_limit_policy": "\(snapshot.policyOrigins["rate_limits"] ?? "-")"])
            return GatewayService(
                config: config, runtime: runtime, quota: quota, webhooks: webhooks, server: server, credentials: credentials, group: group,
                tracing: tracing, logger: logger, state: state, source: configSource)
        } catch {
            await tracing?.stop()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(
        config: GatewayConfig, runtime: ProxyRuntime, quota: QuotaLeaseDriver?, webhooks: WebhookRuntime?, server: IngressServer,
        credentials: any CredentialSource, group: MultiThreadedEventLoopGroup, tracing: GatewayTracing?, logger: Logger, state: ReloadState,
        source: ConfigSource?
    ) {
        self.tracing = tracing
        self.running = NIOLockedValueBox(config)
        self.runtime = runtime
        self.quota = quota
        self.webhooks = webhooks
        self.server = server
        self.credentials = credentials
        self.group = group
        self.logger = logger
        self.stopping = ShutdownProgress(logger: logger)
        self.state = state
        self.source = source
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Called once when `run()` starts, that is once a service group has installed its signal handlers, so a
    /// supervisor told "ready" can already stop the gateway gracefully.
    public let onRunning = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// Asks for a reload of everything now, changed or not (SIGHUP); it runs on the reload loop, after any
    /// reload already under way.
    public func requestReload() {
        wake.yield()
    }

    /// Reloads on every change and serves reload requests until graceful shutdown, then stops.
    ///
    /// Three things wake the one reload loop: a store that pushes changes (PostgreSQL's LISTEN/NOTIFY, so every
    /// instance reloads within milliseconds of a commit), SIGHUP, and the poll interval, which also catches
    /// policy-file edits and covers a lost notification connection. Reloads run one at a time, in this loop only,
    /// so an older snapshot can never replace a newer one.
    public func run() async throws {
        onRunning.withLockedValue { $0 }?()
        // The ticker turns the poll interval into wake-ups of the same loop SIGHUP wakes, so reloads never overlap.
        let ticks = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(2))
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(max(50, self.config.reloadIntervalMs)))
                        ticks.continuation.yield(false)
                    }
                }
                tasks.addTask {
                    for await _ in self.wakeups { ticks.continuation.yield(true) }
                }
                if let quota { tasks.addTask { await quota.run() } }
                if let webhooks { tasks.addTask { await webhooks.worker.run() } }
                tasks.addTask { [credentials, logger] in
                    do {
                        if try await credentials.watchChanges({ ticks.continuation.yield(false) }) == false { return }
                    } catch {
                        logger.warning("store change notifications stopped; polling only", metadata: ["error": "\(error)"])
                    }
                }
                var lastUpkeep = ContinuousClock.now
                for await forced in ticks.stream {
                    if Task.isCancelled || Task.isShuttingDownGracefully { break }
                    await reloadIfChanged(force: forced)
                    if ContinuousClock.now - lastUpkeep > .seconds(10) {
                        lastUpkeep = ContinuousClock.now
                        runtime.pruneUpstreamConnections()
                        runtime.sweepRateLimits()
                    }
                }
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            self.logger.notice("graceful shutdown requested: no new connections; calls in flight finish")
            self.stopping.enter("the reload loop: a reload under way, store change notifications, the quota ledger's driver, the webhook worker")
            ticks.continuation.finish()
            self.wake.finish()
        }
        await shutdown()
    }

    /// Rebuilds the snapshot when the store or a watched file changed since the last build (or always, when
    /// `force`); a failure is logged and the running configuration stays.
    public func reloadIfChanged(force: Bool = false) async {
        do {
            try await reload(force: force)
        } catch {
            logger.error("reload rejected; the running configuration stays", metadata: ["error": "\(error)"])
        }
    }

    /// Reloads now: re-reads the config file (when it has one), policies, catalogue, certificates and the store,
    /// and installs all of it or none. Throws what was wrong.
    public func reload(force: Bool = true) async throws {
        let running = config
        let inputs = ReloadState.Stamps(
            generation: try await Self.storeRead(credentials) { try await $0.generation() },
            files: ReloadState.stamp(of: Self.watchedFiles(config: running, configPath: source?.path)),
            tls: ReloadState.stamp(of: Self.tlsFiles(config: running)))
        // A file rejected once is not re-read every tick: only a further change (or SIGHUP) retries it.
        guard force || state.isDue(inputs) else { return }
        do {
            try await apply(running: running, inputs: inputs, force: force)
        } catch let error as StoreError {
            // The store could not be read (a lost connection, a read past its deadline): not a verdict on these
            // inputs, so the next tick tries them again instead of waiting for a further change.
            state.failedToRead()
            throw error
        } catch {
            state.failed(inputs)
            throw error
        }
    }

    private func apply(running: GatewayConfig, inputs: ReloadState.Stamps, force: Bool) async throws {
        var loaded = running
        if let source {
            loaded = try ConfigLoader.loadGateway(path: source.path, environment: source.environment)
        }
        let restartOnly = RestartOnlySettings.changed(from: running, to: loaded)
        let next = RestartOnlySettings.keeping(restartOnly: running, rest: loaded)
        if state.restartWarning(restartOnly) {
            logger.warning(
                "configuration changes that need a restart were not applied; the running values stay",
                metadata: ["settings": "\(restartOnly.joined(separator: ", "))", "file": "\(source?.path ?? "-")"])
        }
        let built = try await Self.buildSnapshot(config: next, credentials: credentials, version: state.nextVersion(), logger: logger)
        // Keys, routes and destinations are checked with the rest: a bad routes file rejects the whole reload.
        var webhookDirectory: WebhookDirectory?
        if webhooks != nil {
            webhookDirectory = try await credentials.loadWebhookDirectory(routesPath: next.policies.webhooks.map(next.resolve))
        }
        // Certificates last among the checks: new contexts are installed only if all of them build, and only
        // once nothing else can fail.
        if force || state.tlsChanged(inputs.tls) {
            let listeners = try next.listeners.map { try ListenerFactory.spec(for: $0, config: next) }
                + [try next.admin.flatMap { try ListenerFactory.adminSpec($0, config: next) }].compactMap { $0 }
            // The webhook and admin listeners' too, in the same all-or-nothing step.
            try ListenerTLSContexts.reload(
                [server.tlsContexts, adminTLSContexts] + [webhooks?.tlsContexts].compactMap { $0 }, from: listeners)
            logger.notice("listener certificates reloaded: new connections use them")
        }
        self.running.withLockedValue { $0 = next }
        await runtime.install(built.snapshot)
        // What the build read is freed by now, and so is the snapshot replaced unless a call still holds it (then it
        // goes with that call, and the next build's trim gives it back).
        FreedMemory.returnToSystem()
        if let webhookDirectory { webhooks?.directory.replace(with: webhookDirectory) }
        // The store generation the snapshot was read at, which may be newer than the one polled.
        state.built(ReloadState.Stamps(generation: built.generation, files: inputs.files, tls: inputs.tls))
        runtime.drainRetiredIdentities(drain: .seconds(Int64(next.upstream.drainSeconds)))
        logger.notice(
            "configuration reloaded",
            metadata: [
                "snapshot": "\(built.snapshot.version)", "merchants": "\(built.snapshot.merchants.count)", "forced": "\(force)",
                "access_policy": "\(built.policyOrigins["access"] ?? "-")", "rate_limit_policy": "\(built.policyOrigins["rate_limits"] ?? "-")",
            ])
        // Only a changed `log_level` applies, so a level set through the admin listener survives unrelated reloads;
        // logged before it takes effect so that the line is not filtered out by a stricter level.
        if next.logLevel != running.logLevel, let level = Logger.Level(rawValue: next.logLevel) {
            logger.notice("log level changed by configuration", metadata: ["level": "\(level)"])
            JSONLogHandler.setLevel(level)
        }
    }

    /// Graceful stop: stops accepting, lets calls in flight finish (up to `shutdown_grace_seconds`), then closes
    /// upstream connections and the event loops.
    public func shutdown() async {
        stopping.enter("calls in flight (at most shutdown_grace_seconds)")
        let cut = await server.quiesce(grace: .seconds(config.shutdownGraceSeconds))
        if cut > 0 {
            logger.warning("grace period over: closed connections still busy", metadata: ["connections": "\(cut)"])
        }
        runtime.closeUpstreamConnections()
        stopping.enter("the webhook worker")
        await webhooks?.stop()
        // Unspent admissions go back to the ledger, for the instances still running.
        stopping.enter("returning unspent admissions to the quota ledger")
        await quota?.releaseAll()
        stopping.enter("the event loops")
        try? await group.shutdownGracefully()
        // After the calls: their last spans are exported before the exporter stops.
        stopping.enter("the trace exporter")
        await tracing?.stop()
        logger.notice("gateway stopped")
    }

    /// The longest the reload loop waits for one read of the store. A read that never returns (postgres-nio's query
    /// on a connection that closed meanwhile) would otherwise stop every later reload, and the stop with them; a
    /// read left behind only returns a result nobody uses.
    static let storeReadDeadline = Duration.seconds(120)

    /// Reads the store for the reload loop, within `storeReadDeadline`.
    static func storeRead<Result: Sendable>(
        _ credentials: any CredentialSource, _ body: @escaping @Sendable (any CredentialSource) async throws -> Result
    ) async throws -> Result {
        try await withDeadline(storeReadDeadline, { StoreError("the store did not answer a read within \(storeReadDeadline)") }) {
            try await body(credentials)
        }
    }

    /// Every file whose change triggers a reload: the config file, the catalogue and the policies.
    static func watchedFiles(config: GatewayConfig, configPath: String?) -> [String] {
        [configPath].compactMap { $0 } + [config.resolve(config.catalogue)] + config.policies.files.map(config.resolve)
    }

    /// The listeners' certificate, key and client-CA files, the admin listener's included.
    static func tlsFiles(config: GatewayConfig) -> [String] {
        let admin = config.admin?.tls.map { [$0.certificate, $0.privateKey] + [$0.clientCA].compactMap { $0 } } ?? []
        return (config.listeners.compactMap(\.tls).flatMap { [$0.certificate, $0.privateKey] + [$0.clientCA].compactMap { $0 } } + admin)
            .map(config.resolve)
    }

    static func buildSnapshot(
        config: GatewayConfig, credentials: any CredentialSource, version: Int64, logger: Logger
    ) async throws -> (snapshot: GatewaySnapshot, generation: Int64, policyOrigins: [String: String]) {
        let catalogue = try PolicyLoader.loadCatalogue(path: config.resolve(config.catalogue))
        let releases = try config.policies.releases.map {
            try PolicyLoader.loadReleases(path: config.resolve($0), catalogue: catalogue)
        } ?? .klarnaCalendar
        let loaded = try await storeRead(credentials) { try await $0.load() }
        let policies = try PolicySources(config: config, catalogue: catalogue, stored: loaded.policies)
        let rateLimits = policies.rateLimits
        let unmatched = rateLimits.overridesNamingNone(partners: Set(loaded.partners.map(\.record.id)), callers: Set(loaded.callers.map(\.id)))
        if !unmatched.isEmpty {
            logger.warning(
                "rate-limit overrides name no partner or caller in the store; they apply to nothing until one is added",
                metadata: ["overrides": "\(unmatched.joined(separator: ", "))"])
        }
        let snapshot = GatewaySnapshot(
            partners: loaded.partners, merchants: loaded.merchants, callers: loaded.callers, access: policies.access,
            catalogue: catalogue, settings: config.pipelineSettings, rateLimits: rateLimits,
            releases: releases, rollouts: loaded.rollouts, version: version
        )
        return (snapshot, loaded.generation, policies.origins)
    }
}

/// What the last snapshot was built from, to tell whether a reload is due.
final class ReloadState: Sendable {
    /// What a snapshot is built from: the store generation and the files' stamps.
    struct Stamps: Equatable {
        var generation: Int64
        var files: String
        var tls: String
    }

    private struct Inputs {
        var built = Stamps(generation: -1, files: "", tls: "")
        var failed: Stamps?
        var version: Int64 = 0
        var applied = 0
        var rejected = 0
        var warnedRestartOnly: [String] = []
    }

    private let inputs = NIOLockedValueBox<Inputs>(Inputs())

    /// True when the inputs differ from both the last build and the last rejected attempt.
    func isDue(_ stamps: Stamps) -> Bool {
        inputs.withLockedValue { $0.built != stamps && $0.failed != stamps }
    }

    func tlsChanged(_ stamp: String) -> Bool { inputs.withLockedValue { $0.built.tls != stamp } }

    func built(_ stamps: Stamps, counted: Bool = true) {
        inputs.withLockedValue {
            $0.built = stamps
            $0.failed = nil
            if counted { $0.applied += 1 }
        }
    }

    func failed(_ stamps: Stamps) {
        inputs.withLockedValue {
            $0.failed = stamps
            $0.rejected += 1
        }
    }

    /// A reload that could not read the store: counted as rejected, its inputs left due for the next tick.
    func failedToRead() {
        inputs.withLockedValue { $0.rejected += 1 }
    }

    /// True when `settings` is a new list of restart-only changes, so the warning is logged once per change.
    func restartWarning(_ settings: [String]) -> Bool {
        inputs.withLockedValue { inputs in
            defer { inputs.warnedRestartOnly = settings }
            return !settings.isEmpty && settings != inputs.warnedRestartOnly
        }
    }

    var counts: (applied: Int, rejected: Int) { inputs.withLockedValue { ($0.applied, $0.rejected) } }

    var generation: Int64 { inputs.withLockedValue { $0.built.generation } }

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

