import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The running simulator: the HTTPS API (mTLS, Klarna's behaviour) and the plain-HTTP control port on loopback.
///
/// Start it with `start(configuration:group:)`, read the bound ports (configure port 0 in tests), and
/// `shutdown()` when done.
public final class KlarnaSimulatorServer: Sendable {
    /// The HTTPS API port actually bound.
    public let port: Int
    /// The control port actually bound.
    public let controlPort: Int
    let simulator: Simulator
    private let apiChannel: any Channel
    private let controlChannel: any Channel
    private let ownedGroup: MultiThreadedEventLoopGroup?
    private static let logger = Logger(label: "klarna-simulator")

    private init(port: Int, controlPort: Int, simulator: Simulator, apiChannel: any Channel, controlChannel: any Channel, ownedGroup: MultiThreadedEventLoopGroup?) {
        self.port = port
        self.controlPort = controlPort
        self.simulator = simulator
        self.apiChannel = apiChannel
        self.controlChannel = controlChannel
        self.ownedGroup = ownedGroup
    }

    /// Binds both listeners and returns once they accept connections; without a group it runs its own with one
    /// event loop per core.
    public static func start(configuration: SimulatorConfiguration, group: (any EventLoopGroup)?) async throws -> KlarnaSimulatorServer {
        let configuration = try configuration.loadingKeyFiles()
        try configuration.validate()
        let catalogue = try OperationCatalogue(tsv: configuration.catalogueText())
        let tls = configuration.tls
        guard let certificatePEM = try configuration.pem(inline: tls.certificatePEM, file: tls.certificateFile, name: "tls.certificate"),
            let keyPEM = try configuration.pem(inline: tls.keyPEM, file: tls.keyFile, name: "tls.key"),
            let clientCAPEM = try configuration.pem(inline: tls.clientCAPEM, file: tls.clientCAFile, name: "tls.client_ca")
        else { throw SimulatorConfiguration.Invalid(reason: "tls needs a certificate, a key and a client CA") }
        let caKeyPEM = try configuration.pem(inline: tls.caKeyPEM, file: tls.caKeyFile, name: "tls.ca_key")
        let pki = try caKeyPEM.map { try SimulatorPKI(certificatePEM: clientCAPEM, keyPEM: $0) }

        var serverTLS = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
        )
        serverTLS.minimumTLSVersion = .tlsv12
        serverTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientCAPEM.utf8)))
        serverTLS.certificateVerification = (tls.requireClientCertificate ?? true) ? .noHostnameVerification : .optionalVerification
        let sslContext = try NIOSSLContext(configuration: serverTLS)

        let ownedGroup = group == nil ? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount) : nil
        let eventLoopGroup: any EventLoopGroup = group ?? ownedGroup!
        do {
            let webhookRoots = try configuration.pem(inline: nil, file: configuration.webhookCAFile, name: "webhook_ca")
            let dispatcher = try WebhookDispatcher(group: eventLoopGroup, scale: configuration.webhookRetryScale ?? 1, trustRootsPEM: webhookRoots)
            let simulator = Simulator(configuration: configuration, catalogue: catalogue, pki: pki, webhooks: dispatcher)
            let apiChannel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(SimulatorHTTPHandler(readsPeerCertificate: true) { simulator.handle($0) })
                    }
                }
                .bind(host: configuration.listen.host, port: configuration.listen.port).get()
            let control = SimulatorControl(simulator: simulator)
            let controlChannel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(SimulatorHTTPHandler(readsPeerCertificate: false) { control.handle($0) })
                    }
                }
                .bind(host: configuration.control.host, port: configuration.control.port).get()
            let server = KlarnaSimulatorServer(
                port: apiChannel.localAddress?.port ?? 0, controlPort: controlChannel.localAddress?.port ?? 0, simulator: simulator,
                apiChannel: apiChannel, controlChannel: controlChannel, ownedGroup: ownedGroup
            )
            logger.info("klarna-simulator started", metadata: [
                "port": "\(server.port)", "control_port": "\(server.controlPort)", "operations": "\(catalogue.operations.count)",
                "acquirers": "\(configuration.acquirers.count)", "merchants": "\(configuration.merchants.count)",
            ])
            return server
        } catch {
            try? await ownedGroup?.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening, cancels pending webhook retries, and stops its own event loops.
    public func shutdown() async throws {
        simulator.webhooks.shutdown()
        try? await apiChannel.close()
        try? await controlChannel.close()
        try await ownedGroup?.shutdownGracefully()
    }
}
