import GatewayProxy
import Testing

@Suite("TLS server names")
struct TLSServerNameTests {
    @Test("a host name is sent as the server name, also one that starts with a digit; an IPv4 or IPv6 address is not")
    func namesAndAddresses() {
        #expect(TLSServerName.forHost("api.klarna.example") == "api.klarna.example")
        #expect(TLSServerName.forHost("1klarna.example") == "1klarna.example")
        #expect(TLSServerName.forHost("localhost") == "localhost")
        #expect(TLSServerName.forHost("127.0.0.1") == nil)
        #expect(TLSServerName.forHost("10.20.30.40") == nil)
        #expect(TLSServerName.forHost("::1") == nil)
        #expect(TLSServerName.forHost("fd00::a:1") == nil)
    }
}
