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

    /// The admin listener's server context (HTTP/1.1 only, no client certificates); nil when it has no `tls`.
    static func adminContext(_ admin: GatewayConfig.AdminListener, config: GatewayConfig) throws -> NIOSSLContext? {
        guard let settings = admin.tls else { return nil }
        let tls = ServerTLS(
            certificateChainPEM: try read(settings.certificate, for: "admin.tls", config: config),
            privateKey: Secret(try read(settings.privateKey, for: "admin.tls", config: config)), clientCAPEM: nil, clientAuthentication: .none)
        do {
            return try tls.makeContext(http2: false)
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
