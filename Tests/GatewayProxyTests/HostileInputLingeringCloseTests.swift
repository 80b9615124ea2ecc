import Foundation
import GatewayTestSupport
import Testing

/// A refusal answered before the request body was read reaches the caller: the gateway closes its side only,
/// reads and drops what the caller still sends, and closes when the caller does (a lingering close). Without it,
/// the kernel resets the connection over the unread body and the caller sees "connection reset" instead of 413.
///
/// Named with the hostile-input suites so that `bin/test` runs it after the rest: its 10 MB bodies would otherwise
/// show in the memory-bounded export test, which measures the whole test process.
@Suite("Lingering close")
struct HostileInputLingeringCloseTests {
    static let create = "/v2/accounts/m1/payment/requests"
    static let limit = 1_048_576

    /// Sends a POST with a body of `size` bytes in one go, without waiting for the write, and reads the answer.
    static func attempt(port: Int, tls: TestTLS?, size: Int, token: String) async throws -> RawHTTPResponse? {
        let connection = try await RawConnection.open(port: port, tls: tls)
        let head = http1("POST", create, [("Authorization", token), ("Content-Type", "application/json"), ("Content-Length", String(size))])
        connection.sendWithoutWaiting(head + [UInt8](repeating: UInt8(ascii: "a"), count: size))
        let response = await connection.response(timeout: .seconds(30))
        await connection.close()
        return response
    }

    @Test("413 before the body: every attempt reads the answer, over TLS and plain HTTP, just over the limit and at 10 MB", .timeLimit(.minutes(8)))
    func everyAttemptReadsItsAnswer() async throws {
        try await withGateway { gw in
            let loopback = try #require(gw.service.ports["loopback"])
            let transports: [(String, Int, TestTLS?)] = [("tls", gw.httpsPort, gw.rawTLS()), ("plain", loopback, nil)]
            for (name, port, tls) in transports {
                for (size, attempts) in [(Self.limit + 1, 20), (10 * Self.limit, 8)] {
                    var lost = 0
                    for _ in 0..<attempts {
                        let response = try await Self.attempt(port: port, tls: tls, size: size, token: gw.token("checkout"))
                        if let response, response.status == 413, String(decoding: response.body, as: UTF8.self).contains("GATEWAY_PAYLOAD_TOO_LARGE") { continue }
                        lost += 1
                    }
                    #expect(lost == 0, "\(name), \(size) bytes: \(lost) of \(attempts) attempts did not read their 413")
                }
            }
            // The gateway still serves: lingering connections did not take it down.
            try await gw.expectServes()
        }
    }
}
