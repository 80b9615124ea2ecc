import Foundation
import GatewayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 8, resource abuse: connection floods meet the connection limit, bodies meet the body limit, and the
/// gateway keeps serving.
@Suite("Hostile input: resource abuse", .serialized)
struct HostileInputResourceTests {
    static let create = "/v2/accounts/m1/payment/requests"
    static let limit = 1_048_576

    /// A JSON payment request of exactly `size` bytes.
    static func body(size: Int) -> [UInt8] {
        let head = #"{"currency":"EUR","amount":11800,"merchant_reference":""#
        let tail = #""}"#
        return Array((head + String(repeating: "x", count: size - head.utf8.count - tail.utf8.count) + tail).utf8)
    }

    /// Raises the soft open-file limit to the hard one; returns the limit now in force.
    static func raiseOpenFileLimit() -> Int {
        var limits = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits)
        limits.rlim_cur = limits.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits)
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits)
        return Int(limits.rlim_cur)
    }

    static func waitFor(_ timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    @Test("10,000 idle connections: those beyond max_connections are closed at once, and the gateway serves once they go")
    func idleConnections() async throws {
        let fileLimit = Self.raiseOpenFileLimit()
        try #require(fileLimit >= 12_500, "RLIMIT_NOFILE is \(fileLimit); 10,000 client sockets plus the gateway's need more")
        try await withGateway(limits: "max_connections: 1000, header_read_timeout_ms: 60000") { gw in
            let ingress = gw.service.ingressConnections
            var connections: [RawConnection] = []
            for _ in 0..<20 {
                try await withThrowingTaskGroup(of: RawConnection.self) { group in
                    for _ in 0..<500 { group.addTask { try await RawConnection.open(port: gw.httpsPort, tls: nil) } }
                    for try await connection in group { connections.append(connection) }
                }
            }
            #expect(connections.count == 10_000)
            #expect(await Self.waitFor { ingress.refused >= 9000 }, "refused \(ingress.refused)")
            // Every connection beyond the limit is closed while the first thousand are still held (so the
            // header-read timeout, a minute here, had no part in it).
            #expect(await Self.waitFor { connections.filter(\.isClosed).count >= 9000 })
            #expect(ingress.open == 1000)
            #expect(connections.filter(\.isClosed).count == 9000)
            #expect(ingress.refused == 9000)
            for connection in connections { await connection.close() }
            #expect(await Self.waitFor { ingress.open == 0 })
            #expect(try await gw.received().isEmpty)
            try await gw.expectServes()
        }
    }

    @Test("a body of exactly the limit passes; one byte over is refused with 413 before anything is forwarded")
    func bodyLimit() async throws {
        try await HostileGateway.exclusive { gw in
            let before = try await gw.received().count
            let client = gw.client()
            let atLimit = try await client.send("POST", Self.create, headers: [gw.bearer("checkout"), ("Content-Type", "application/json")], body: Self.body(size: Self.limit))
            #expect(atLimit.errorCode?.hasPrefix("GATEWAY_") != true, "the gateway refused a body at the limit: \(atLimit.errorCode ?? "")")
            let received = try await gw.received()
            #expect(received.count == before + 1)
            #expect(received.last?["body_size"]?.intValue == Self.limit)
            try await client.close()
            // Answered from the head alone: the gateway refuses before reading the body, and closes (lingering, so a
            // client that pushes the whole body first still reads the 413: HostileInputLingeringCloseTests).
            try await gw.probe(HostileCase("body one byte over the limit", .refusal(413, "GATEWAY_PAYLOAD_TOO_LARGE", closes: true)) { gw in
                http1("POST", Self.create, [("Authorization", gw.token("checkout")), ("Content-Length", String(Self.limit + 1))])
            })
            try await gw.probe(HostileCase("chunked body one byte over the limit", .refusal(413, "GATEWAY_PAYLOAD_TOO_LARGE", closes: true)) { gw in
                let payload = Self.body(size: Self.limit + 1)
                return http1("POST", Self.create, [("Authorization", gw.token("checkout")), ("Transfer-Encoding", "chunked")],
                             body: Array((String(payload.count, radix: 16) + "\r\n").utf8) + payload + Array("\r\n0\r\n\r\n".utf8))
            })
        }
    }

    @Test("many concurrent large uploads: each at the limit is forwarded whole, each over it refused, and nothing else is lost")
    func concurrentUploads() async throws {
        try await withGateway { gw in
            let uploads = 12
            // Spread over the merchants the caller may reach, so Klarna's per-merchant rate limits do not refuse them.
            let merchants = ["m1", "m2", "m4"]
            let statuses = try await withThrowingTaskGroup(of: (Bool, Int, String?).self) { group in
                for index in 0..<uploads {
                    let over = index % 2 == 1
                    let path = "/v2/accounts/\(merchants[(index / 2) % merchants.count])/payment/requests"
                    group.addTask {
                        let client = gw.client()
                        defer { Task { try? await client.close() } }
                        do {
                            let response = try await client.send(
                                "POST", path, headers: [gw.bearer("checkout"), ("Content-Type", "application/json")],
                                body: Self.body(size: over ? Self.limit + 1 : Self.limit))
                            return (over, response.status, response.errorCode)
                        } catch where over {
                            // The gateway answers 413 at the head and closes; a client still writing its body may
                            // see the reset before it reads the answer.
                            return (over, 413, "GATEWAY_PAYLOAD_TOO_LARGE")
                        }
                    }
                }
                var all: [(Bool, Int, String?)] = []
                for try await result in group { all.append(result) }
                return all
            }
            #expect(statuses.count == uploads)
            for (over, status, code) in statuses where over {
                #expect(status == 413 && code == "GATEWAY_PAYLOAD_TOO_LARGE")
            }
            for (over, _, code) in statuses where !over {
                #expect(code?.hasPrefix("GATEWAY_") != true, "an upload at the limit was refused: \(code ?? "")")
            }
            let received = try await gw.received()
            #expect(received.count == uploads / 2)
            #expect(received.allSatisfy { $0["body_size"]?.intValue == Self.limit })
            try await gw.expectServes()
        }
    }
}
