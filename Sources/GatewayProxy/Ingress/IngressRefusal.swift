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
        let requestID = UUID().uuidString.lowercased()
        var record = CallRecord(
            phase: .refusal, requestID: requestID, timeMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), method: "?", path: "?")
        record.clientAddress = context.channel.remoteAddress?.ipAddress
        record.status = error.status
        record.gatewayErrorCode = error.code.rawValue
        let body = error.klarnaJSON(errorID: requestID)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Klarna-Gateway-Request-Id", value: requestID)
        headers.add(name: "Connection", value: "close")
        runtime.journal.record(record, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            guard context.channel.isActive else { return }
            let status = HTTPResponseStatus(statusCode: error.status)
            context.write(wrap(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrap(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrap(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}
