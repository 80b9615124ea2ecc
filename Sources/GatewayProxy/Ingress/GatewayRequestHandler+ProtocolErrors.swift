import GatewayCore
import NIOCore
import NIOHTTP1

/// HTTP/1 parse errors (smuggling attempts, oversize heads, bad framing), answered in Klarna's error shape and
/// journaled; the connection then closes, since after a parse error the byte stream cannot be trusted.
///
/// This was a handler of its own between the pipelining handler and this one, and it only watched what this
/// handler reads and writes: folded in, every read and write of a call passes one handler fewer.
extension GatewayRequestHandler {
    /// A parse error: cuts the connection while an answer is being written, refuses the call whose request it
    /// interrupted, and otherwise answers it at the connection level (`IngressRefusal`).
    func protocolError(_ parserError: HTTPParserError, context: ChannelHandlerContext) {
        guard !answering else {
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
        if requestOpen {
            // The call may already be forwarding this request: it must refuse it and abort upstream.
            requestFailed(gatewayError, context: context)
            return
        }
        // Its own writes are not seen by `outbound`: nothing after it is answered but by closing.
        answering = true
        runtime.connectionRefusals.count(.malformedRequest)
        IngressRefusal.answer(gatewayError, context: context, runtime: runtime, wrap: wrapOutboundOut)
    }

    /// Wraps a part this handler writes to the caller, noting first whether a final answer is being written (the
    /// note must precede the write: writing an answer's end can deliver a pipelined request, or its parse error).
    func outbound(_ part: HTTPServerResponsePart) -> NIOAny {
        switch part {
        case .head(let head) where head.status.code >= 200: answering = true
        case .end: answering = false
        default: break
        }
        return wrapOutboundOut(part)
    }
}
