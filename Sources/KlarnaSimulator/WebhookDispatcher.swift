import Crypto
import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// One event on its way to one webhook.
struct WebhookDelivery: Sendable {
    let event: SimulatorEvent
    let webhook: WebhookRecord
    let signingKey: SigningKeyRecord
}

/// Delivers signed webhooks and retries them on Klarna's schedule, scaled for tests.
///
/// Each delivery is one body, signed once: `Klarna-Signature` is the lowercase hex HMAC-SHA256 of exactly the bytes
/// sent, so every retry carries the same `event_id` and signature and receivers can de-duplicate.
final class WebhookDispatcher: Sendable {
    /// Klarna's retry delays after the first attempt, in seconds.
    static let retrySchedule: [Double] = [10, 120, 900, 10_800, 21_600, 43_200]

    /// One attempt's result, for the control endpoint.
    struct Attempt: Sendable {
        let atMilliseconds: Int64
        let status: Int?
        let error: String?
    }

    /// A delivery's history.
    struct Log: Sendable {
        let id: String
        let webhookID: String
        let eventID: String
        let eventType: String
        let url: String
        let signingKeyID: String
        let signature: String
        let body: [UInt8]
        var attempts: [Attempt] = []
        var state = "PENDING"

        var json: JSONValue {
            [
                "delivery_id": .string(id), "webhook_id": .string(webhookID), "event_id": .string(eventID), "event_type": .string(eventType),
                "url": .string(url), "signing_key_id": .string(signingKeyID), "signature": .string(signature), "state": .string(state),
                "body": .string(String(decoding: body, as: UTF8.self)),
                "attempts": .array(attempts.map { ["at": .string(SimulatorClock.iso8601($0.atMilliseconds)), "status": $0.status.map { .int($0) } ?? .null, "error": $0.error.json] }),
            ]
        }
    }

    private let group: any EventLoopGroup
    private let scale: Double
    /// Client TLS for https webhook URLs, made once.
    private let tlsContext: NIOSSLContext
    private let logs = Mutex<[Log]>([])
    private let tasks = Mutex<[String: Task<Void, Never>]>([:])
    private static let maximumLogs = 10_000

    init(group: any EventLoopGroup, scale: Double, trustRootsPEM: String?) throws {
        self.group = group
        self.scale = scale
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let trustRootsPEM { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(trustRootsPEM.utf8))) }
        self.tlsContext = try NIOSSLContext(configuration: configuration)
    }

    /// The signature Klarna sends: lowercase hex HMAC-SHA256 of the raw body under the signing key's secret.
    static func signature(body: [UInt8], secret: String) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))))
    }

    /// Klarna's envelope around an event's payload.
    static func envelope(_ delivery: WebhookDelivery, eventID: String, now: Int64) -> JSONValue {
        [
            "metadata": [
                "event_type": .string(delivery.event.type), "event_id": .string(eventID), "event_version": .string(delivery.webhook.eventVersion),
                "occurred_at": .string(SimulatorClock.iso8601(now)), "correlation_id": .string(SimulatorID.uuid()),
                "subject_account_id": delivery.event.merchant.json, "recipient_account_id": .string(delivery.event.acquirer.krn),
                "webhook_id": .string(delivery.webhook.id), "live": false,
            ],
            "payload": delivery.event.payload,
        ]
    }

    var deliveries: [Log] { logs.withLock { $0 } }

    func clear() { logs.withLock { $0.removeAll() } }

    func start(_ delivery: WebhookDelivery) {
        let now = SimulatorClock.nowMilliseconds()
        let eventID = SimulatorID.uuid()
        let body = Self.envelope(delivery, eventID: eventID, now: now).bytes
        let log = Log(
            id: SimulatorID.uuid(), webhookID: delivery.webhook.id, eventID: eventID, eventType: delivery.event.type, url: delivery.webhook.url,
            signingKeyID: delivery.signingKey.id, signature: Self.signature(body: body, secret: delivery.signingKey.secret), body: body
        )
        logs.withLock { logs in
            logs.append(log)
            if logs.count > Self.maximumLogs { logs.removeFirst(logs.count - Self.maximumLogs) }
        }
        let task = Task { [self] in await self.run(log) }
        tasks.withLock { $0[log.id] = task }
    }

    private func run(_ log: Log) async {
        defer { _ = tasks.withLock { $0.removeValue(forKey: log.id) } }
        for attempt in 0...Self.retrySchedule.count {
            if attempt > 0 {
                let delay = Self.retrySchedule[attempt - 1] * scale
                do { try await Task.sleep(for: .milliseconds(Int(delay * 1000))) } catch { return }
            }
            let outcome: Attempt
            do {
                let status = try await post(url: log.url, body: log.body, headers: [
                    ("Content-Type", "application/json"), ("Klarna-Signature", log.signature), ("Klarna-Signing-Key-Id", log.signingKeyID),
                    ("User-Agent", "klarna-simulator-webhooks"),
                ])
                outcome = Attempt(atMilliseconds: SimulatorClock.nowMilliseconds(), status: status, error: nil)
            } catch {
                outcome = Attempt(atMilliseconds: SimulatorClock.nowMilliseconds(), status: nil, error: "\(error)")
            }
            let delivered = [200, 201, 202, 204].contains(outcome.status ?? 0)
            let finalAttempt = attempt == Self.retrySchedule.count
            logs.withLock { logs in
                guard let index = logs.firstIndex(where: { $0.id == log.id }) else { return }
                logs[index].attempts.append(outcome)
                logs[index].state = delivered ? "DELIVERED" : (finalAttempt ? "FAILED" : "RETRYING")
            }
            if delivered || Task.isCancelled { return }
        }
    }

    func shutdown() {
        let running = tasks.withLock { tasks in
            defer { tasks.removeAll() }
            return Array(tasks.values)
        }
        for task in running { task.cancel() }
    }

    struct DeliveryError: Error, CustomStringConvertible {
        let description: String
    }

    /// One POST on a fresh connection (`Connection: close`); returns the status.
    private func post(url: String, body: [UInt8], headers: [(String, String)]) async throws -> Int {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else {
            throw DeliveryError(description: "bad URL")
        }
        let secure = scheme == "https"
        let port = components.port ?? (secure ? 443 : 80)
        let path = (components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath) + (components.percentEncodedQuery.map { "?\($0)" } ?? "")
        let context = secure ? tlsContext : nil
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: host))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StatusCollector())
                }
            }
            .connect(host: host, port: port).get()
        let promise = channel.eventLoop.makePromise(of: Int.self)
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) {
            promise.fail(DeliveryError(description: "timed out"))
            channel.close(promise: nil)
        }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: components.port.map { "\(host):\($0)" } ?? host)
        head.headers.add(name: "Content-Length", value: String(body.count))
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.writeAndFlush(StatusCollector.Request(head: head, body: body, promise: promise), promise: nil)
        defer {
            timeout.cancel()
            channel.close(promise: nil)
        }
        return try await promise.futureResult.get()
    }
}

/// Writes one request and reports the response status once the response has ended.
final class StatusCollector: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Request
    typealias OutboundOut = HTTPClientRequestPart

    struct Request: Sendable {
        let head: HTTPRequestHead
        let body: [UInt8]
        let promise: EventLoopPromise<Int>
    }

    private var promise: EventLoopPromise<Int>?
    private var status: Int?

    func write(context: ChannelHandlerContext, data: NIOAny, promise writePromise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        promise = request.promise
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: request.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: writePromise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head) where head.status.code >= 200: status = Int(head.status.code)
        case .end:
            if let status, let promise {
                self.promise = nil
                promise.succeed(status)
            }
        default: break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(WebhookDispatcher.DeliveryError(description: "connection closed"))
        promise = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }
}
