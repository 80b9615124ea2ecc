import Foundation
import GatewayPostgres
import GatewayCore
import GatewayProxy

/// `klarna-gateway check`: loads everything `serve` would load from files (config, catalogue, policies,
/// listener certificates and keys, the upstream CA) without binding or opening the store, and reports every
/// problem found rather than only the first.
public enum ConfigCheck {
    /// What a check found.
    public struct Report: Sendable {
        /// One line per problem, each naming its file.
        public var problems: [String] = []
        /// One line per file that loaded, saying what it holds.
        public var summary: [String] = []
        /// True when nothing is wrong.
        public var isValid: Bool { problems.isEmpty }
    }

    /// Checks the config file at `path` (with `KGW_` overrides from `environment`) and every file it names.
    public static func run(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> Report {
        var report = Report()
        func attempt(_ body: () throws -> Void) {
            do { try body() } catch { report.problems.append("\(error)") }
        }
        let config: GatewayConfig
        do {
            config = try ConfigLoader.loadGateway(path: path, environment: environment)
        } catch {
            report.problems.append("\(error)")
            return report
        }
        report.summary.append(
            "config \(path): node \(config.nodeID), \(config.listeners.count) listener(s), admin \(config.admin.map { "\($0.address):\($0.port)\($0.tls == nil ? "" : " (TLS)")" } ?? "off"), "
                + "audit \(config.auditEnabled ? PostgresURL.redacted(config.audit.path) : "off"), log level \(config.logLevel)")
        if config.storageIsPostgres {
            let q = config.quotaLeasing
            report.summary.append(
                "quota leasing: limits shared through the store's ledger (lease horizon \(q.leaseHorizonMs) ms, lifetime \(q.leaseLifetimeMs) ms, "
                    + "heartbeat \(q.heartbeatIntervalMs) ms, instance window \(q.instanceWindowMs) ms, ledger timeout \(q.ledgerTimeoutMs) ms)")
        }
        if let admin = config.admin { attempt { _ = try ListenerFactory.adminContext(admin, config: config) } }
        var catalogue: OperationCatalogue?
        attempt {
            let loaded = try PolicyLoader.loadCatalogue(path: config.resolve(config.catalogue))
            catalogue = loaded
            report.summary.append("catalogue \(config.resolve(config.catalogue)): \(loaded.operations.count) operations, \(loaded.families.count) families")
        }
        if let catalogue {
            if let problem = config.unknownTimeoutFamilyProblem(catalogue: catalogue) { report.problems.append("\(problem)") }
            attempt {
                let access = try PolicyLoader.loadAccess(path: config.resolve(config.policies.access), catalogue: catalogue)
                report.summary.append("access \(config.resolve(config.policies.access)): \(access.callers.count) caller grant(s)")
            }
            if let path = config.policies.rateLimits {
                attempt {
                    _ = try PolicyLoader.loadRateLimits(path: config.resolve(path), catalogue: catalogue)
                    report.summary.append("rate limits \(config.resolve(path)): valid")
                }
            }
            if let path = config.policies.releases {
                attempt {
                    _ = try PolicyLoader.loadReleases(path: config.resolve(path), catalogue: catalogue)
                    report.summary.append("releases \(config.resolve(path)): valid")
                }
            }
        }
        if let path = config.policies.webhooks {
            attempt {
                // Without the store, destinations cannot be checked here; `serve` and reloads check them too.
                let routes = try PolicyLoader.loadWebhookRoutes(path: config.resolve(path), knownDestinations: nil)
                report.summary.append("webhook routes \(config.resolve(path)): \(routes.routes.count) route(s)")
            }
        }
        for listener in config.listeners {
            attempt {
                let spec = try ListenerFactory.spec(for: listener, config: config)
                if let tls = spec.tls {
                    do {
                        _ = try tls.makeContext(http2: spec.http2)
                    } catch {
                        throw ConfigError(source: config.resolve(listener.tls?.certificate ?? "?"), reason: "listener '\(listener.name)': certificate or key unusable (\(error))")
                    }
                }
                report.summary.append(
                    "listener \(listener.name): \(listener.address):\(listener.port) \(spec.tls == nil ? "plain HTTP" : "TLS")"
                        + (listener.klarnaWebhooks == true ? ", Klarna webhooks" : ""))
            }
        }
        if let caFile = config.upstream.caFile {
            attempt {
                do {
                    _ = try UpstreamTLSContexts(caPEM: try String(contentsOfFile: config.resolve(caFile), encoding: .utf8))
                } catch {
                    throw ConfigError(source: config.resolve(caFile), reason: "upstream CA unusable (\(error))")
                }
                report.summary.append("upstream CA \(config.resolve(caFile)): valid")
            }
        }
        return report
    }
}
