import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// A refusal at the connection level, before any request was handed to the gateway handler: a parse error or a
/// head that never completed. It is journaled like every refusal, answered in Klarna's shape, and the
/// connection is closed, because after it the byte stream cannot be trusted.
enum IngressRefusal {
    /// Journals `error`, writes it as the response, and closes the connection.
    static func answer(
        _ error: GatewayError, context: ChannelHandlerContext, runtime: ProxyRuntime,
        wrap: @escaping (HTTPServerResponsePart) -> NIOAny
    ) {
        let requestID = RequestID.make()
        var record = CallRecord(
            phase: .refusal, requestID: requestID, timeMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), method: "?", path: "?")
        record.clientAddress = context.channel.remoteAddress?.ipAddress
        record.status = error.status
        record.gatewayErrorCode = error.code.rawValue
        let response = RefusalResponse(error, requestID: requestID, generatedKey: nil, close: true)
        let started = NIODeadline.now()
        runtime.journal.record(record, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            // Counted like every refusal (`kgw_requests_total`, `kgw_gateway_errors_total`).
            runtime.metrics.observe(record, started: started)
            guard context.channel.isActive else { return }
            response.write(to: context, wrap: wrap).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}

/// A refusal as the caller receives it: Klarna's error shape with the gateway's code, the request id, and any
/// headers the error carries. Every refusal the gateway sends is rendered here, whichever handler refused (the
/// webhook listener's included).
public struct RefusalResponse: Sendable {
    /// The response head.
    public let head: HTTPResponseHead
    /// The JSON body.
    public let body: String

    /// Renders `error`; `generatedKey` is the idempotency key the gateway added, `close` asks the caller to close.
    public init(_ error: GatewayError, requestID: String, generatedKey: String?, close: Bool) {
        body = error.klarnaJSON(errorID: requestID)
        var headers = HTTPHeaders()
        headers.reserveCapacity(5 + error.extraHeaders.count)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Klarna-Gateway-Request-Id", value: requestID)
        for header in error.extraHeaders { headers.add(name: header.name, value: header.value) }
        if let generatedKey { headers.add(name: IdempotencyKeys.gatewayHeader, value: generatedKey) }
        if close { headers.add(name: "Connection", value: "close") }
        head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: error.status), headers: headers)
    }

    /// Writes head, body and end; `promise` is the end's write.
    public func write(to context: ChannelHandlerContext, wrap: (HTTPServerResponsePart) -> NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(wrap(.head(head)), promise: nil)
        context.write(wrap(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrap(.end(nil)), promise: promise)
    }

    /// Writes head, body and end; the future is the end's write.
    public func write(to context: ChannelHandlerContext, wrap: (HTTPServerResponsePart) -> NIOAny) -> EventLoopFuture<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        write(to: context, wrap: wrap, promise: promise)
        return promise.futureResult
    }
}

extension RefusalResponse {
    /// Lets a refused CONNECT carry its JSON body. NIO's server pipeline pairs the response encoder with the
    /// request decoder so that every answer to CONNECT leaves without a body (and without Content-Length): right
    /// for the 2xx that opens a tunnel, wrong for a refusal, which RFC 9110 9.3.6 lets carry one. The connection
    /// closes after a refused CONNECT, so its encoder is swapped for an unpaired one, which frames the answer from
    /// its status like any other. If the encoder cannot be found the refusal still leaves, bodiless.
    static func unpairEncoder(of pipeline: ChannelPipeline.SynchronousOperations) {
        guard let paired = try? pipeline.handler(type: HTTPResponseEncoder.self) else { return }
        // Added in front of the paired one and the paired one removed at once, with no write in between: the
        // unpaired encoder takes its place.
        guard (try? pipeline.addHandler(HTTPResponseEncoder(), position: .before(paired))) != nil else { return }
        pipeline.removeHandler(paired, promise: nil)
    }
}
