@testable import GatewayApp
import Testing

@Suite("OTLP collector endpoints")
struct OTLPEndpointTests {
    @Test("an endpoint URL gives the address to connect to, the request target and the Host header; an IPv6 literal loses its brackets for connecting and keeps them in Host")
    func endpoints() throws {
        let plain = try #require(OTLPCollectorClient.Endpoint("http://otel-collector:4318/v1/traces"))
        #expect(!plain.tls && plain.host == "otel-collector" && plain.port == 4318)
        #expect(plain.target == "/v1/traces" && plain.authority == "otel-collector:4318")
        let secure = try #require(OTLPCollectorClient.Endpoint("https://collector.example/otlp/v1/traces?tenant=acq"))
        #expect(secure.tls && secure.host == "collector.example" && secure.port == 443)
        #expect(secure.target == "/otlp/v1/traces?tenant=acq" && secure.authority == "collector.example")
        let six = try #require(OTLPCollectorClient.Endpoint("http://[::1]:4318/v1/traces"))
        #expect(six.host == "::1" && six.port == 4318 && six.authority == "[::1]:4318")
        let bare = try #require(OTLPCollectorClient.Endpoint("http://127.0.0.1:4318"))
        #expect(bare.target == "/")
    }

    @Test("anything but an http:// or https:// URL with a host is no endpoint, and the config check says so")
    func notEndpoints() {
        for url in ["grpc://collector:4317", "collector:4318/v1/traces", "http:///v1/traces", "", "http://bad host/v1/traces"] {
            #expect(OTLPCollectorClient.Endpoint(url) == nil, "\(url)")
        }
        var tracing = GatewayConfig.Tracing()
        tracing.enabled = true
        tracing.endpoint = "http://bad host/v1/traces"
        #expect(tracing.problems.contains { $0.contains("tracing.endpoint") })
    }
}
