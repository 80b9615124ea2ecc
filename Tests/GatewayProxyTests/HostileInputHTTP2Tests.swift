import Foundation
import GatewayTestSupport
import Testing

/// Issue 8, HTTP/2 floods: the limits NIOHTTP2 enforces (configured explicitly in `HTTP2IngressLimits`) end an
/// abusive connection with GOAWAY `ENHANCE_YOUR_CALM`, and the gateway goes on serving.
@Suite("Hostile input: HTTP/2 floods", .serialized)
struct HostileInputHTTP2Tests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let enhanceYourCalm: UInt32 = 0x0B

    /// One HTTP/2 frame.
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags,
                UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// A GET's header block: indexed `:method GET` and `:scheme https`, literal `:path` and `:authority`.
    static func getHeaderBlock(path: String) -> [UInt8] {
        func literal(index: UInt8, _ value: String) -> [UInt8] { [index, UInt8(value.utf8.count)] + Array(value.utf8) }
        return [0x82, 0x87] + literal(index: 0x04, path) + literal(index: 0x01, "localhost")
    }

    /// Every (type, payload) frame the server sent, parsed off the raw bytes.
    static func frames(in bytes: [UInt8]) -> [(type: UInt8, payload: [UInt8])] {
        var frames: [(type: UInt8, payload: [UInt8])] = []
        var index = 0
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard index + 9 + length <= bytes.count else { break }
            frames.append((bytes[index + 3], Array(bytes[index + 9..<index + 9 + length])))
            index += 9 + length
        }
        return frames
    }

    /// The first GOAWAY the server sent, if any: the highest stream it took up, and its error code.
    static func goAway(in bytes: [UInt8]) -> (lastStream: UInt32, code: UInt32)? {
        guard let goAway = frames(in: bytes).first(where: { $0.type == 0x07 }), goAway.payload.count >= 8 else { return nil }
        let word = { (at: Int) in goAway.payload[at..<at + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        return (word(0) & 0x7fff_ffff, word(4))
    }

    /// The GOAWAY error code the server sent, if any.
    static func goAwayCode(in bytes: [UInt8]) -> UInt32? { goAway(in: bytes)?.code }

    static func h2(_ gw: GatewayHarness) async throws -> RawConnection {
        try await RawConnection.open(port: gw.httpsPort, tls: gw.rawTLS(alpn: ["h2"]))
    }

    @Test("a rapid-reset flood (HEADERS then RST_STREAM, over and over) ends in GOAWAY ENHANCE_YOUR_CALM")
    func rapidReset() async throws {
        try await HostileGateway.exclusive { gw in
            let before = try await gw.received().count
            let connection = try await Self.h2(gw)
            var flood = Self.preface + Self.frame(type: 0x04)
            let block = Self.getHeaderBlock(path: seedTransaction)
            for index in 0..<2000 {
                let stream = UInt32(2 * index + 1)
                flood += Self.frame(type: 0x01, flags: 0x04, stream: stream, payload: block)
                flood += Self.frame(type: 0x03, stream: stream, payload: [0, 0, 0, 0x08])
            }
            await connection.send(flood)
            #expect(await connection.waitForClose(timeout: .seconds(30)), "the flooding connection was left open; frames \(Self.frames(in: connection.received).map(\.type).prefix(40)) of \(Self.frames(in: connection.received).count), \(connection.received.count) bytes")
            #expect(Self.goAwayCode(in: connection.received) == Self.enhanceYourCalm)
            #expect(try await gw.received().count == before)
            try await gw.expectServes()
        }
    }

    @Test("a SETTINGS flood ends in GOAWAY ENHANCE_YOUR_CALM")
    func settingsFlood() async throws {
        try await HostileGateway.exclusive { gw in
            let connection = try await Self.h2(gw)
            var flood = Self.preface + Self.frame(type: 0x04)
            for _ in 0..<5000 { flood += Self.frame(type: 0x04, payload: [0x00, 0x03, 0x00, 0x00, 0x00, 0x64]) }
            await connection.send(flood)
            #expect(await connection.waitForClose(timeout: .seconds(30)), "the flooding connection was left open; frames \(Self.frames(in: connection.received).map(\.type).prefix(40)) of \(Self.frames(in: connection.received).count), \(connection.received.count) bytes")
            #expect(Self.goAwayCode(in: connection.received) == Self.enhanceYourCalm)
            try await gw.expectServes()
        }
    }

    @Test("a PING flood ends in GOAWAY ENHANCE_YOUR_CALM")
    func pingFlood() async throws {
        try await HostileGateway.exclusive { gw in
            let connection = try await Self.h2(gw)
            var flood = Self.preface + Self.frame(type: 0x04)
            for index in 0..<5000 { flood += Self.frame(type: 0x06, payload: (0..<8).map { UInt8(truncatingIfNeeded: index >> ($0 % 4)) }) }
            await connection.send(flood)
            #expect(await connection.waitForClose(timeout: .seconds(30)), "the flooding connection was left open; frames \(Self.frames(in: connection.received).map(\.type).prefix(40)) of \(Self.frames(in: connection.received).count), \(connection.received.count) bytes")
            #expect(Self.goAwayCode(in: connection.received) == Self.enhanceYourCalm)
            try await gw.expectServes()
        }
    }

    @Test("an HTTP/2 request with a hostile path and no credentials is refused on its stream like its HTTP/1 twin")
    func http2Refusal() async throws {
        try await HostileGateway.exclusive { gw in
            let before = try await gw.received().count
            let connection = try await Self.h2(gw)
            // An unauthenticated GET, END_STREAM: answered 401 on its stream.
            await connection.send(Self.preface + Self.frame(type: 0x04)
                + Self.frame(type: 0x01, flags: 0x05, stream: 1, payload: Self.getHeaderBlock(path: "/v2/accounts/m1/../m3" + HostileInputPathTests.tail)))
            var body = ""
            let deadline = ContinuousClock.now + .seconds(20)
            while !body.contains("}") && ContinuousClock.now < deadline {
                body = Self.frames(in: connection.received).filter { $0.type == 0x00 }.map { String(decoding: $0.payload, as: UTF8.self) }.joined()
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(body.contains("GATEWAY_UNAUTHENTICATED"), "no Klarna-shaped refusal on the stream: \(body)")
            await connection.close()
            #expect(try await gw.received().count == before)
            try await gw.expectServes()
        }
    }
}
