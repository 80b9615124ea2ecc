import Foundation
import GatewayCore
import GatewayPolicy
import GatewayProxy
import NIOSSL

/// Turns a configured listener into what the data plane binds, reading its PEM files.
enum ListenerFactory {
    static func spec(for listener: GatewayConfig.Listener, config: GatewayConfig) throws -> ListenerSpec {
        var tls: ServerTLS?
        if let settings = listener.tls {
            func read(_ path: String) throws -> String { try Self.read(path, for: "listener '\(listener.name)'", config: config) }
            let clientAuthentication: ServerTLS.ClientAuthentication =
                switch settings.clientCertificates {
                case .none: .none
                case .optional: .optional
                case .required: .required
                }
            tls = ServerTLS(
                certificateChainPEM: try read(settings.certificate), privateKey: Secret(try read(settings.privateKey)),
                clientCAPEM: try settings.clientCA.map(read), clientAuthentication: clientAuthentication
            )
        }
        return ListenerSpec(name: listener.name, host: listener.address, port: listener.port, tls: tls, http2: listener.http2 ?? true)
    }

    /// The name the admin listener's context is kept under in its `ListenerTLSContexts` group.
    static let adminListenerName = "admin"

    /// The admin listener as a TLS listener spec (HTTP/1.1 only), its files read now; nil when it has no `tls`.
    static func adminSpec(_ admin: GatewayConfig.AdminListener, config: GatewayConfig) throws -> ListenerSpec? {
        guard let settings = admin.tls else { return nil }
        func read(_ path: String) throws -> String { try Self.read(path, for: "admin.tls", config: config) }
        let clientAuthentication: ServerTLS.ClientAuthentication =
            switch settings.clientCertificates ?? .none {
            case .none: .none
            case .optional: .optional
            case .required: .required
            }
        let tls = ServerTLS(
            certificateChainPEM: try read(settings.certificate), privateKey: Secret(try read(settings.privateKey)),
            clientCAPEM: try settings.clientCA.map(read), clientAuthentication: clientAuthentication)
        return ListenerSpec(name: adminListenerName, host: admin.address, port: admin.port, tls: tls, http2: false)
    }

    /// The admin listener's server context; nil when it has no `tls`.
    static func adminContext(_ admin: GatewayConfig.AdminListener, config: GatewayConfig) throws -> NIOSSLContext? {
        guard let spec = try adminSpec(admin, config: config), let tls = spec.tls, let settings = admin.tls else { return nil }
        do {
            return try tls.makeContext(http2: false)
        } catch {
            throw ConfigError(source: config.resolve(settings.certificate), reason: "admin.tls: not a usable certificate and key (\(error))")
        }
    }

    /// Reads the admin listener's files into `group` (checked now, so a bad file stops `serve` at start); a reload
    /// replaces the context there with the ingress listeners'. False when it has no `tls`.
    static func addAdmin(_ admin: GatewayConfig.AdminListener, config: GatewayConfig, to group: ListenerTLSContexts) throws -> Bool {
        guard let spec = try adminSpec(admin, config: config), let settings = admin.tls else { return false }
        do {
            return try group.add(spec) != nil
        } catch {
            throw ConfigError(source: config.resolve(settings.certificate), reason: "admin.tls: not a usable certificate and key (\(error))")
        }
    }

    /// A PEM file named by the config, relative to it.
    private static func read(_ path: String, for owner: String, config: GatewayConfig) throws -> String {
        do {
            return try String(contentsOfFile: config.resolve(path), encoding: .utf8)
        } catch {
            throw ConfigError(source: config.resolve(path), reason: "\(owner): cannot read (\(error.localizedDescription))")
        }
    }
}
