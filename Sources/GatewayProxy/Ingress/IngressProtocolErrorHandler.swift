import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// Answers HTTP/1 parse errors (smuggling attempts, oversize heads, bad framing) in Klarna's error shape,
/// journals them, and closes the connection: after a parse error the byte stream cannot be trusted.
final class IngressProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let runtime: ProxyRuntime
    private var responseInProgress = false

    init(runtime: ProxyRuntime) { self.runtime = runtime }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !responseInProgress else {
            context.close(promise: nil)
            return
        }
        let gatewayError: GatewayError
        switch parserError {
        case .headerOverflow:
            gatewayError = GatewayError(.headersTooLarge, "The request head is too large.")
        case .invalidURL:
            gatewayError = GatewayError(.badRequest, "The request target is malformed.")
        default:
            gatewayError = GatewayError(.badRequest, "The request is malformed HTTP (\(parserError)).")
        }
        let requestID = UUID().uuidString.lowercased()
        var record = CallRecord(phase: .refusal, requestID: requestID, timeMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), method: "?", path: "?")
        record.clientAddress = context.channel.remoteAddress?.ipAddress
        record.status = gatewayError.status
        record.gatewayErrorCode = gatewayError.code.rawValue
        let body = gatewayError.klarnaJSON(errorID: requestID)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Klarna-Gateway-Request-Id", value: requestID)
        headers.add(name: "Connection", value: "close")
        responseInProgress = true
        runtime.journal.record(record, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            let status = HTTPResponseStatus(statusCode: gatewayError.status)
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responseInProgress = true
        case .end: responseInProgress = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
