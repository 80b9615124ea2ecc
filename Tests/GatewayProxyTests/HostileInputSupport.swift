import Foundation
import GatewayCore
import GatewayTestSupport
import GRDB
import KlarnaSimulator
import Testing

/// What a hostile request must get.
enum HostileExpectation: Sendable {
    /// A Klarna-shaped refusal with this status and gateway code; `closes` says whether the connection must close.
    case refusal(Int, String, closes: Bool = false)
    /// No HTTP answer is possible (garbage below HTTP): the gateway must close the connection.
    case closed
}

/// One hostile case: the exact bytes (built with the harness's tokens) and what must come back.
struct HostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    let expectation: HostileExpectation
    let bytes: @Sendable (GatewayHarness) -> [UInt8]

    init(_ name: String, _ expectation: HostileExpectation, _ bytes: @escaping @Sendable (GatewayHarness) -> [UInt8]) {
        self.name = name
        self.expectation = expectation
        self.bytes = bytes
    }

    var testDescription: String { name }
}

/// One gateway shared by the hostile-input suites, used by one case at a time so "the simulator received
/// nothing" is exact. A case that broke the gateway would fail every case after it, which is the point.
enum HostileGateway {
    private static let harness = Task { try await GatewayHarness.start() }
    private static let turns = TurnQueue()

    /// Runs `body` alone against the shared gateway.
    static func exclusive(_ body: (GatewayHarness) async throws -> Void) async throws {
        let gw = try await harness.value
        await turns.acquire()
        defer { turns.release() }
        try await body(gw)
    }
}

/// The path of a transaction every harness merchant M1 can read.
let seedTransaction = "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:seed-M1"

/// An HTTP/1.1 request as exact bytes; `host: false` leaves out the Host header.
func http1(
    _ method: String, _ target: String, _ headers: [(String, String)] = [], body: [UInt8] = [], version: String = "HTTP/1.1",
    host: Bool = true
) -> [UInt8] {
    var text = "\(method) \(target) \(version)\r\n"
    if host { text += "Host: localhost\r\n" }
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    text += "\r\n"
    return Array(text.utf8) + body
}

extension GatewayHarness {
    /// TLS settings for a raw connection to the gateway, optionally with a caller's client certificate.
    func rawTLS(certificate: String? = nil, alpn: [String] = []) -> TestTLS {
        let identity = certificate.flatMap { callerCertificates[$0] }
        var tls = TestTLS(trustRootsPEM: callerCA.caCertificatePEM, clientCertificatePEM: identity?.certificatePEM, clientKeyPEM: identity?.privateKeyPEM)
        tls.applicationProtocols = alpn
        return tls
    }

    /// A raw TLS connection to the gateway's listener.
    func raw(certificate: String? = nil, receiveBuffer: Int? = nil) async throws -> RawConnection {
        try await RawConnection.open(port: httpsPort, tls: rawTLS(certificate: certificate), receiveBuffer: receiveBuffer)
    }

    /// The bearer header value of a caller.
    func token(_ caller: String) -> String { "Bearer \(tokens[caller] ?? "none")" }

    /// (phase, status, gateway error code) of each audit record of a request, after flushing the writer.
    func auditRecords(requestID: String) async throws -> [(phase: String, status: Int?, code: String?)] {
        await audit.flush()
        return try Self.auditRows(auditPath, requestID: requestID)
    }

    private static func auditRows(_ path: String, requestID: String) throws -> [(phase: String, status: Int?, code: String?)] {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT phase, status, gateway_error_code FROM audit_records WHERE request_id = ? ORDER BY seq", arguments: [requestID])
                .map { row -> (phase: String, status: Int?, code: String?) in (row[0], row[1], row[2]) }
        }
    }

    /// Audit refusal records carrying `code`.
    func refusalCount(code: String) async throws -> Int {
        await audit.flush()
        return try Self.refusalRows(auditPath, code: code)
    }

    private static func refusalRows(_ path: String, code: String) throws -> Int {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_records WHERE phase = 'refusal' AND gateway_error_code = ?", arguments: [code]) ?? 0
        }
    }

    /// A normal call still works: the gateway survived whatever came before.
    func expectServes(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let client = client()
        let response = try await client.send("GET", seedTransaction, headers: [bearer("checkout")])
        try await client.close()
        #expect(response.status == 200, "the gateway no longer serves a normal call", sourceLocation: sourceLocation)
    }

    /// Sends a hostile case on a fresh raw connection and checks everything the issue asks: the status and code
    /// (or a closed connection), the audit refusal, nothing at Klarna, and a normal call served afterwards.
    func probe(_ hostile: HostileCase, certificate: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let before = try await received().count
        let connection = try await raw(certificate: certificate)
        await connection.send(hostile.bytes(self))
        switch hostile.expectation {
        case .refusal(let status, let code, let closes):
            let response = try #require(await connection.response(), "no response to \(hostile.name)", sourceLocation: sourceLocation)
            #expect(response.status == status, "\(hostile.name): status", sourceLocation: sourceLocation)
            let json = (try? JSONValue.parse(response.body)) ?? .null
            #expect(json["error_code"]?.stringValue == code, "\(hostile.name): \(String(decoding: response.body, as: UTF8.self))", sourceLocation: sourceLocation)
            #expect(json["error_id"]?.stringValue == response.header("klarna-gateway-request-id"), sourceLocation: sourceLocation)
            let requestID = try #require(response.header("klarna-gateway-request-id"), sourceLocation: sourceLocation)
            // A request whose framing broke after its head had started on its way has an intent, then the refusal.
            let records = try await auditRecords(requestID: requestID)
            #expect(records.last?.phase == "refusal", "\(hostile.name): audit records \(records)", sourceLocation: sourceLocation)
            #expect(!records.contains { $0.phase == "outcome" }, sourceLocation: sourceLocation)
            #expect(records.last?.code == code, sourceLocation: sourceLocation)
            if closes {
                #expect(await connection.waitForClose(), "\(hostile.name): connection left open", sourceLocation: sourceLocation)
            }
        case .closed:
            #expect(await connection.waitForClose(), "\(hostile.name): connection left open", sourceLocation: sourceLocation)
            let text = String(decoding: connection.received, as: UTF8.self)
            #expect(!text.contains("HTTP/1.1 2"), "\(hostile.name): answered \(text.prefix(80))", sourceLocation: sourceLocation)
        }
        await connection.close()
        let after = try await received().count
        #expect(after == before, "\(hostile.name): Klarna received \(after - before) request(s)", sourceLocation: sourceLocation)
        try await expectServes(sourceLocation: sourceLocation)
    }
}
