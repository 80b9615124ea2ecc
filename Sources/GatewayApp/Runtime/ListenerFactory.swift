import Foundation
import GatewayCore
import GatewayPolicy
import GatewayProxy

/// Turns a configured listener into what the data plane binds, reading its PEM files.
enum ListenerFactory {
    static func spec(for listener: GatewayConfig.Listener, config: GatewayConfig) throws -> ListenerSpec {
        var tls: ServerTLS?
        if let settings = listener.tls {
            func read(_ path: String) throws -> String {
                do {
                    return try String(contentsOfFile: config.resolve(path), encoding: .utf8)
                } catch {
                    throw ConfigError(source: config.resolve(path), reason: "listener '\(listener.name)': cannot read (\(error.localizedDescription))")
                }
            }
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
}
