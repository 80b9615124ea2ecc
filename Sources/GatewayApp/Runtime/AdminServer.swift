import Foundation
import GatewayAudit
import GatewayCore
import GatewayProxy
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What `/readyz` reports, gathered when asked.
public struct Readiness: Sendable {
    /// Whether the gateway should receive traffic.
    public var ready: Bool
    /// One line of JSON describing each part.
    public var json: String
}

/// What the admin listener serves beyond health: metrics and the run-time log level.
public struct AdminRoutes: Sendable {
    /// The Prometheus text exposition, gathered on the given loop; nil serves no `/metrics`.
    public var metrics: (@Sendable (any EventLoop) -> EventLoopFuture<String>)?
    /// The log level in force.
    public var logLevel: @Sendable () -> String
    /// Sets the log level; false for a name that is not a level.
    public var setLogLevel: @Sendable (String) -> Bool
    /// `/admin/v1/`; nil serves none of it (404).
    public var api: AdminAPI?
    /// Whether `PUT /log-level` is served. It takes no token and is not audited, so it is served on a loopback
    /// listener only (where reaching it already takes a shell on the host or a tunnel).
    public var logLevelChangeAllowed = true
    /// Whether `/metrics`, and `/readyz` beyond its `ready` bit, need an admin token (any role): set off loopback,
    /// where anyone who reaches the port would otherwise read the gateway's traffic and its upstream hosts.
    /// `/healthz` and `/readyz`'s bit stay open for load balancers and probes, which carry no token.
    public var detailsNeedToken = false

    /// Routes over the process-wide JSON log level, and `metrics` if given.
    public init(
        metrics: (@Sendable (any EventLoop) -> EventLoopFuture<String>)? = nil,
        logLevel: @escaping @Sendable () -> String = { JSONLogHandler.level.rawValue },
        setLogLevel: @escaping @Sendable (String) -> Bool = { name in
            guard let level = Logger.Level(rawValue: name) else { return false }
            JSONLogHandler.setLevel(level)
            return true
        },
        api: AdminAPI? = nil
    ) {
        self.api = api
        self.metrics = metrics
        self.logLevel = logLevel
        self.setLogLevel = setLogLevel
    }
}

/// The admin listener (loopback by default): `/healthz` says the process is alive, `/readyz` whether it can serve
/// calls (the audit writer can record, a snapshot is loaded) and each upstream host's circuit breaker,
/// `/metrics` the Prometheus exposition, `GET`/`PUT /log-level` the log level, and `/admin/v1/` the admin API
/// (docs/admin-api.md). It carries no secret, and no merchant id outside the admin API unless metrics are
/// configured with merchant labels.
public final class AdminServer: Sendable {
    private let channel: any Channel

    /// The bound port.
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) { self.channel = channel }

    /// Binds the admin listener, over TLS when `tls` is given; `readiness` is asked on every `/readyz`.
    public static func start(
        host: String, port: Int, group: any EventLoopGroup, routes: AdminRoutes = AdminRoutes(), tls: NIOSSLContext? = nil,
        readiness: @escaping @Sendable () -> Readiness
    ) async throws -> AdminServer {
        var context: (@Sendable () -> NIOSSLContext)?
        if let tls { context = { tls } }
        return try await start(host: host, port: port, group: group, routes: routes, context: context, readiness: readiness)
    }

    /// Binds the admin listener over TLS with the context `tlsContexts` holds for it when a connection arrives, so
    /// a reload that replaces it there (`GatewayService.adminTLSContexts`) serves new handshakes the new certificate
    /// while open connections keep theirs; plain HTTP when the group holds none.
    public static func start(
        host: String, port: Int, group: any EventLoopGroup, routes: AdminRoutes = AdminRoutes(), tlsContexts: ListenerTLSContexts,
        readiness: @escaping @Sendable () -> Readiness
    ) async throws -> AdminServer {
        var context: (@Sendable () -> NIOSSLContext)?
        if let holder = tlsContexts.holder(named: ListenerFactory.adminListenerName) { context = { holder.current } }
        return try await start(host: host, port: port, group: group, routes: routes, context: context, readiness: readiness)
    }

    private static func start(
        host: String, port: Int, group: any EventLoopGroup, routes: AdminRoutes, context: (@Sendable () -> NIOSSLContext)?,
        readiness: @escaping @Sendable () -> Readiness
    ) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context())) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(readiness: readiness, routes: routes))
                }
            }
            .bind(host: host, port: port).get()
        return AdminServer(channel: channel)
    }

    /// The server context `admin.tls` names, read from its files and checked now (so a bad file stops `serve` at
    /// start); nil when the admin listener has no `tls`.
    public static func tlsContext(_ admin: GatewayConfig.AdminListener, config: GatewayConfig) throws -> NIOSSLContext? {
        try ListenerFactory.adminContext(admin, config: config)
    }

    /// Reads `admin.tls` into `service`'s admin group, checked now (a bad file stops `serve` at start), and returns
    /// the group to bind with; reloads then replace the context as they replace the listeners'.
    public static func tlsContexts(_ admin: GatewayConfig.AdminListener, config: GatewayConfig, service: GatewayService) throws -> ListenerTLSContexts {
        _ = try ListenerFactory.addAdmin(admin, config: config, to: service.adminTLSContexts)
        return service.adminTLSContexts
    }

    /// Readiness of a gateway whose calls are journaled by `audit` (nil when audit is off).
    public static func readiness(audit: AuditWriter?, service: GatewayService) -> Readiness {
        let health = audit?.health
        let auditReady = health?.isHealthy ?? true
        var parts = ["\"snapshot\":\(service.runtime.snapshots.current.version)", "\"store_generation\":\(service.snapshotGeneration)"]
        if let health {
            parts.append("\"audit\":" + JSONValue.object(AdminJSON.auditHealth(health)).text)
        } else {
            parts.append("\"audit\":\"disabled\"")
        }
        // Breaker states are reported but do not make the gateway unready: every instance sees the same Klarna,
        // and an open breaker already answers fast.
        let breakers = service.runtime.breakers.states.map { "\(JSONText.quote($0.host)):\(JSONText.quote($0.state))" }
        parts.append("\"upstream\":{\"calls_in_flight\":\(service.runtime.callsInFlight),\"breakers\":{\(breakers.joined(separator: ","))}}")
        // Fallback does not make the gateway unready either: it keeps serving at its share of each limit.
        if let quota = service.runtime.rateLimiter.quotaStatus {
            parts.append("\"quota\":{\"fallback\":\(quota.fallback),\"instances\":\(quota.instances),\"parked\":\(quota.parked)}")
        }
        return Readiness(ready: auditReady, json: "{\"ready\":\(auditReady)," + parts.joined(separator: ",") + "}")
    }

    /// Stops listening.
    public func stop() async { try? await channel.close() }
}

/// Answers `/healthz`, `/readyz`, `/metrics`, `/log-level`, `/admin/v1/` and `/console/`; everything else is 404.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The largest request body read; an admin API body is a small JSON object.
    static let maxBodyBytes = 64 * 1024
    /// The largest CSV a merchant import reads: about 100,000 lines of `id,partner,account,group`.
    static let maxImportBodyBytes = 8 * 1024 * 1024
    /// The path whose body may be as large as `maxImportBodyBytes`.
    static let importPath = "/admin/v1/merchants/import"

    /// The body bound for a request target: the import's for the import, 64 KiB for everything else.
    static func maxBodyBytes(for uri: String) -> Int {
        let path = uri.split(separator: "?", maxSplits: 1).first ?? ""
        return path == importPath ? maxImportBodyBytes : maxBodyBytes
    }

    private let readiness: @Sendable () -> Readiness
    private let routes: AdminRoutes
    /// Read on the connection's first request, after the handshake, as the ingress listeners read theirs.
    private var connection: CallerConnection?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false

    init(readiness: @escaping @Sendable () -> Readiness, routes: AdminRoutes) {
        self.readiness = readiness
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            bodyTooLarge = false
        case .body(let buffer):
            if body.count + buffer.readableBytes > Self.maxBodyBytes(for: head?.uri ?? "") {
                bodyTooLarge = true
            } else {
                body += buffer.readableBytesView
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            if let api = routes.api, path.hasPrefix("/admin/") {
                serve(api, head: head, context: context)
                return
            }
            // The console is a client of the admin API, so it is served only where the API is.
            if routes.api != nil, path == "/console" || path.hasPrefix("/console/") {
                let (head, bytes) = ConsoleAssets.answer(method: head.method, path: path)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                if !bytes.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil) }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            switch (head.method, path) {
            case (_, "/healthz"): respond(context: context, .ok, "{\"alive\":true}")
            case (_, "/readyz") where routes.detailsNeedToken && !head.headers.contains(name: "Authorization"):
                // A probe carries no token: it gets the bit it acts on and nothing more.
                let report = readiness()
                respond(context: context, report.ready ? .ok : .serviceUnavailable, "{\"ready\":\(report.ready)}")
            case (_, "/readyz"):
                afterTokenCheck(head: head, context: context) { handler, context in
                    let report = handler.readiness()
                    handler.respond(context: context, report.ready ? .ok : .serviceUnavailable, report.json)
                }
            case (.GET, "/metrics"):
                guard let metrics = routes.metrics else {
                    respond(context: context, .notFound, "{\"error\":\"metrics are not enabled\"}")
                    return
                }
                afterTokenCheck(head: head, context: context) { handler, context in
                    let loopBound = NIOLoopBound((handler, context), eventLoop: context.eventLoop)
                    metrics(context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
                        let (handler, context) = loopBound.value
                        switch result {
                        case .success(let text): handler.respond(context: context, .ok, text, contentType: "text/plain; version=0.0.4; charset=utf-8")
                        case .failure(let error): handler.respond(context: context, .internalServerError, "{\"error\":\(JSONText.quote("\(error)"))}")
                        }
                    }
                }
            case (.GET, "/log-level"): respond(context: context, .ok, "{\"level\":\(JSONText.quote(routes.logLevel()))}")
            case (.PUT, "/log-level") where !routes.logLevelChangeAllowed:
                respond(
                    context: context, .forbidden,
                    "{\"error\":\"PUT /log-level is served on a loopback admin listener only; change log_level in the config and reload (SIGHUP)\"}")
            case (.PUT, "/log-level"):
                // A log level is a word; anything longer is not one.
                let name = Self.levelName(in: String(decoding: body.prefix(256), as: UTF8.self))
                if routes.setLogLevel(name) {
                    respond(context: context, .ok, "{\"level\":\(JSONText.quote(routes.logLevel()))}")
                } else {
                    respond(
                        context: context, .badRequest,
                        "{\"error\":\"not a log level; use one of trace, debug, info, notice, warning, error, critical\"}")
                }
            default: respond(context: context, .notFound, "{\"error\":\"not found\"}")
            }
        }
    }

    /// Runs `body` at once where details need no token; else only once the request's admin token is checked (off
    /// the event loop, by the admin API), answering the refusal instead when it is not valid.
    private func afterTokenCheck(
        head: HTTPRequestHead, context: ChannelHandlerContext, _ body: @escaping (AdminHandler, ChannelHandlerContext) -> Void
    ) {
        guard routes.detailsNeedToken else { return body(self, context) }
        guard let api = routes.api else {
            return respond(context: context, .forbidden, "{\"error\":\"off loopback this needs an admin token, and the admin API is not served\"}")
        }
        let peer = peer(context)
        let request = AdminRequest(
            method: head.method.rawValue, target: head.uri, headers: head.headers, body: [], clientAddress: peer.address,
            clientCertificateFingerprint: peer.fingerprint)
        let loopBound = NIOLoopBound((self, context, body), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { await api.observabilityRefusal(request) }.whenSuccess { refusal in
            let (handler, context, body) = loopBound.value
            if let refusal { handler.write(refusal, context: context) } else { body(handler, context) }
        }
    }

    /// Hands a request to the admin API off the event loop and writes its answer back on it.
    private func serve(_ api: AdminAPI, head: HTTPRequestHead, context: ChannelHandlerContext) {
        let peer = peer(context)
        let request = AdminRequest(
            method: head.method.rawValue, target: head.uri, headers: head.headers, body: bodyTooLarge ? [] : body,
            clientAddress: peer.address, bodyTooLarge: bodyTooLarge, clientCertificateFingerprint: peer.fingerprint)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { await api.handle(request) }.whenSuccess { response in
            let (handler, context) = loopBound.value
            handler.write(response, context: context)
        }
    }

    /// The peer's address and verified client certificate, read once per connection.
    private func peer(_ context: ChannelHandlerContext) -> CallerConnection {
        if let connection { return connection }
        let read = CallerConnection.read(context.channel)
        connection = read
        return read
    }

    private func write(_ response: AdminResponse, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(response.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// `debug`, or `{"level":"debug"}`.
    static func levelName(in body: String) -> String {
        let text = body.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("{"), let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let level = object["level"] as? String
        else { return text }
        return level
    }

    private func respond(context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String, contentType: String = "application/json") {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
