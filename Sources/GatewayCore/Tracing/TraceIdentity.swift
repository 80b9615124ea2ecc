/// A call's place in a W3C trace: the trace it belongs to, the gateway's span in it (if the call has one) and
/// whether it is sampled. Plain integers, so a call carries it (and its record takes it to the log writer's
/// thread) without an allocation; the hex text is made only where a line or a header needs it.
public struct TraceIdentity: Sendable, Hashable {
    /// The trace id's first and last 8 bytes (big-endian halves of the 16-byte id).
    public var traceHigh: UInt64
    /// The trace id's last 8 bytes.
    public var traceLow: UInt64
    /// The span id; 0 when the gateway made no span for the call (not sampled), or the caller's span's id in a
    /// parent read from `traceparent`.
    public var spanID: UInt64
    /// The sampled flag (`traceparent` flags bit 0).
    public var sampled: Bool

    /// Makes an identity from its parts.
    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool) {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.spanID = spanID
        self.sampled = sampled
    }

    /// Reads a `traceparent` value (W3C Trace Context level 1): `00-<32 hex>-<16 hex>-<2 hex>`. A later version is
    /// read by the same prefix, as the specification asks; version `ff`, upper-case hex, all-zero ids and anything
    /// malformed give nil (the caller's trace is then not continued: the gateway starts its own).
    public init?<S: StringProtocol>(traceparent: S) {
        var parsed: TraceIdentity?
        var text = String(traceparent)
        text.withUTF8 { bytes in
            guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-"),
                  let version = Self.hex(bytes, 0, 2), version != 0xFF, version != 0 || bytes.count == 55,
                  bytes.count == 55 || bytes[55] == UInt8(ascii: "-"),
                  let high = Self.hex(bytes, 3, 16), let low = Self.hex(bytes, 19, 16), high | low != 0,
                  let span = Self.hex(bytes, 36, 16), span != 0, let flags = Self.hex(bytes, 53, 2)
            else { return }
            parsed = TraceIdentity(traceHigh: high, traceLow: low, spanID: span, sampled: flags & 1 == 1)
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// A new trace (random 128-bit id, no span yet) for a call whose caller sent none.
    public static func newTrace<R: RandomNumberGenerator>(using random: inout R) -> TraceIdentity {
        var high: UInt64 = 0
        var low: UInt64 = 0
        while high | low == 0 {
            high = random.next()
            low = random.next()
        }
        return TraceIdentity(traceHigh: high, traceLow: low, spanID: 0, sampled: false)
    }

    /// The trace id, 32 lower-case hex digits: also the `Partner-Correlation-Id` a traced call sends Klarna
    /// when its caller sent none (alphanumeric, as Klarna documents the header).
    public var traceIDHex: String {
        var halves = (traceHigh.bigEndian, traceLow.bigEndian)
        return withUnsafeBytes(of: &halves) { Hex.encode($0) }
    }

    /// The span id, 16 lower-case hex digits; nil when there is no span.
    public var spanIDHex: String? {
        guard spanID != 0 else { return nil }
        var value = spanID.bigEndian
        return withUnsafeBytes(of: &value) { Hex.encode($0) }
    }

    /// The `traceparent` value naming this identity's span as the parent.
    public var traceparent: String {
        "00-\(traceIDHex)-\(spanIDHex ?? "0000000000000000")-\(sampled ? "01" : "00")"
    }

    /// `count` lower-case hex digits at `start` as a number; nil for any other byte.
    private static func hex(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> UInt64? {
        var value: UInt64 = 0
        for byte in bytes[start..<(start + count)] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }
}

/// Which calls are traced (`tracing.sampling` in `gateway.yaml`). The decision is made once, when the call's head
/// arrives, before any span exists, so an unsampled call costs no span at all; `errors` adds a call found failing
/// later (a refusal, a 5xx), whose span is then made from the times the call already holds.
public struct TraceSampling: Sendable, Equatable {
    /// Share of new traces sampled, 0...1; applied to the trace id (its low 8 bytes), so every gateway instance
    /// decides the same for one trace.
    public var ratio: Double
    /// A caller's `traceparent` decides: its sampled flag is followed, whatever `ratio` says.
    public var parentBased: Bool
    /// Calls that end in a gateway refusal or a 5xx are traced even when not sampled.
    public var errors: Bool

    /// Makes a policy; by default everything is sampled, callers' decisions are followed and errors are kept.
    public init(ratio: Double = 1, parentBased: Bool = true, errors: Bool = true) {
        self.ratio = ratio
        self.parentBased = parentBased
        self.errors = errors
    }

    /// Whether a call whose caller sent `parent` (nil: none) is sampled; `random` decides a new trace by ratio.
    public func samples(parent: TraceIdentity?, random: UInt64) -> Bool {
        if parentBased, let parent { return parent.sampled }
        guard ratio > 0 else { return false }
        guard ratio < 1 else { return true }
        return (parent?.traceLow ?? random) < UInt64(ratio * 18_446_744_073_709_551_616.0)
    }

    /// Whether a call that ended so counts as an error for `errors`: the gateway refused it, or the answer is a
    /// 5xx (Klarna's or the gateway's).
    public static func isError(status: Int?, gatewayErrorCode: String?) -> Bool {
        gatewayErrorCode != nil || (status ?? 0) >= 500
    }
}
