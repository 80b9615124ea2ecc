import GatewayAudit
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// What `/readyz` reports, gathered when asked.
public struct Readiness: Sendable {
    /// Whether the gateway should receive traffic.
    public var ready: Bool
    /// One line of JSON describing each part.
    public var json: String
}

/// The admin listener (loopback by default): `/healthz` says the process is alive, `/readyz` whether it can
/// serve calls (the audit writer can record, a snapshot is loaded) and shows each upstream host's circuit breaker.
/// It carries no secret and no merchant id.
public final class AdminServer: Sendable {
    private let channel: any Channel

    /// The bound port.
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) { self.channel = channel }

    /// Binds the admin listener; `readiness` is asked on every `/readyz`.
    public static func start(host: String, port: Int, group: any EventLoopGroup, readiness: @escaping @Sendable () -> Readiness) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(readiness: readiness))
                }
            }
            .bind(host: host, port: port).get()
        return AdminServer(channel: channel)
    }

    /// Readiness of a gateway whose calls are journaled by `audit` (nil when audit is off).
    public static func readiness(audit: AuditWriter?, service: GatewayService) -> Readiness {
        let health = audit?.health
        let auditReady = health?.isHealthy ?? true
        var parts = ["\"snapshot\":\(service.runtime.snapshots.current.version)", "\"store_generation\":\(service.snapshotGeneration)"]
        if let health {
            parts.append(
                "\"audit\":{\"healthy\":\(health.isHealthy),\"queue_depth\":\(health.queueDepth),\"last_seq\":\(health.lastSeq),"
                    + "\"consecutive_failures\":\(health.consecutiveFailures),\"last_error\":\(health.lastError.map(JSONText.quote) ?? "null")}")
        } else {
            parts.append("\"audit\":\"disabled\"")
        }
        // Breaker states are reported but do not make the gateway unready: every instance sees the same Klarna,
        // and an open breaker already answers fast.
        let breakers = service.runtime.breakers.states.map { "\(JSONText.quote($0.host)):\(JSONText.quote($0.state))" }
        parts.append("\"upstream\":{\"calls_in_flight\":\(service.runtime.callsInFlight),\"breakers\":{\(breakers.joined(separator: ","))}}")
        return Readiness(ready: auditReady, json: "{\"ready\":\(auditReady)," + parts.joined(separator: ",") + "}")
    }

    /// Stops listening.
    public func stop() async { try? await channel.close() }
}

/// Answers `/healthz` and `/readyz`; everything else is 404.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let readiness: @Sendable () -> Readiness
    private var path: String?

    init(readiness: @escaping @Sendable () -> Readiness) { self.readiness = readiness }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): path = head.uri
        case .body: break
        case .end:
            let (status, body): (HTTPResponseStatus, String)
            switch path {
            case "/healthz": (status, body) = (.ok, "{\"alive\":true}")
            case "/readyz":
                let report = readiness()
                (status, body) = (report.ready ? .ok : .serviceUnavailable, report.json)
            default: (status, body) = (.notFound, "{\"error\":\"not found\"}")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
