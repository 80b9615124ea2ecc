import Synchronization

/// Connections the gateway ended before any call could be made of them, by reason, for `/metrics`: an SRE sees a
/// TLS misconfiguration, a flood or a slow-loris client as a rising count instead of silence.
public final class ConnectionRefusals: Sendable {
    /// Why a connection was ended.
    public enum Reason: String, CaseIterable, Sendable {
        /// The TLS handshake did not finish within the header-read timeout.
        case tlsHandshakeTimeout = "tls_handshake_timeout"
        /// The TLS handshake failed (no or a bad client certificate, no shared cipher, not TLS at all).
        case tlsHandshakeFailed = "tls_handshake_failed"
        /// HTTP/1 that does not parse (answered 400 or 431, then closed).
        case malformedRequest = "malformed_request"
        /// No complete HTTP/1 request head within the header-read timeout (answered 408, then closed).
        case requestHeadTimeout = "request_head_timeout"
        /// An HTTP/2 connection error: a flood or a protocol violation (GOAWAY, then closed).
        case http2ConnectionError = "http2_connection_error"
    }

    private let handshakeTimeouts = Atomic<Int>(0)
    private let handshakeFailures = Atomic<Int>(0)
    private let malformed = Atomic<Int>(0)
    private let headTimeouts = Atomic<Int>(0)
    private let http2Errors = Atomic<Int>(0)

    /// Starts at zero.
    public init() {}

    /// Counts one connection ended for `reason`.
    public func count(_ reason: Reason) {
        switch reason {
        case .tlsHandshakeTimeout: handshakeTimeouts.add(1, ordering: .relaxed)
        case .tlsHandshakeFailed: handshakeFailures.add(1, ordering: .relaxed)
        case .malformedRequest: malformed.add(1, ordering: .relaxed)
        case .requestHeadTimeout: headTimeouts.add(1, ordering: .relaxed)
        case .http2ConnectionError: http2Errors.add(1, ordering: .relaxed)
        }
    }

    /// The count so far for `reason`.
    public func count(of reason: Reason) -> Int {
        switch reason {
        case .tlsHandshakeTimeout: handshakeTimeouts.load(ordering: .relaxed)
        case .tlsHandshakeFailed: handshakeFailures.load(ordering: .relaxed)
        case .malformedRequest: malformed.load(ordering: .relaxed)
        case .requestHeadTimeout: headTimeouts.load(ordering: .relaxed)
        case .http2ConnectionError: http2Errors.load(ordering: .relaxed)
        }
    }
}
