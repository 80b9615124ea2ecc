import GatewayCore
import Testing

@Suite("Trace identity and sampling")
struct TraceIdentityTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("a traceparent is read into its ids and flag, and written back the same")
    func parses() throws {
        let identity = try #require(TraceIdentity(traceparent: Self.valid))
        #expect(identity.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(identity.spanIDHex == "00f067aa0ba902b7")
        #expect(identity.sampled)
        #expect(identity.traceparent == Self.valid)
        #expect(TraceIdentity(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled == false)
        // A later version is read by its level-1 prefix.
        #expect(TraceIdentity(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")?.sampled == true)
    }

    @Test("malformed traceparents are not continued", arguments: [
        "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    ])
    func refuses(_ value: String) {
        #expect(TraceIdentity(traceparent: value) == nil)
    }

    @Test("sampling: a caller's flag decides when parent-based, the ratio otherwise, errors are recognised")
    func sampling() throws {
        let sampledParent = try #require(TraceIdentity(traceparent: Self.valid))
        var unsampledParent = sampledParent
        unsampledParent.sampled = false
        let none = TraceSampling(ratio: 0)
        #expect(none.samples(parent: sampledParent, random: 0))
        #expect(!none.samples(parent: unsampledParent, random: 0))
        #expect(!none.samples(parent: nil, random: 0))
        #expect(TraceSampling(ratio: 1).samples(parent: nil, random: .max))
        #expect(!TraceSampling(ratio: 1, parentBased: true).samples(parent: unsampledParent, random: 0))
        #expect(TraceSampling(ratio: 1, parentBased: false).samples(parent: unsampledParent, random: 0))
        let half = TraceSampling(ratio: 0.5, parentBased: false)
        #expect(half.samples(parent: nil, random: 1 << 62) && !half.samples(parent: nil, random: 3 << 62))
        // By the trace id's low half, so every instance decides the same for one trace.
        #expect(half.samples(parent: unsampledParent, random: .max) == (unsampledParent.traceLow < 1 << 63))
        #expect(TraceSampling.isError(status: 403, gatewayErrorCode: "GATEWAY_FORBIDDEN"))
        #expect(TraceSampling.isError(status: 503, gatewayErrorCode: nil))
        #expect(!TraceSampling.isError(status: 404, gatewayErrorCode: nil))
    }

    @Test("a new trace has a non-zero id and no span")
    func newTrace() {
        var random = SystemRandomNumberGenerator()
        let identity = TraceIdentity.newTrace(using: &random)
        #expect(identity.traceIDHex.count == 32 && identity.traceIDHex != String(repeating: "0", count: 32))
        #expect(identity.spanIDHex == nil && !identity.sampled)
    }
}
