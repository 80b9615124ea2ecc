import Foundation
import GatewayApp
import GatewayCore
import GatewayProxy
import GatewayTestSupport
import GRDB
import NIOPosix
import Testing

/// A harness gateway with the admin API on an admin listener of its own (real socket, real store, the gateway's
/// own journal), and one admin account per role.
struct AdminAPIHarness {
    let gw: GatewayHarness
    let server: AdminServer
    let client: TestHTTPClient
    /// Each role's admin token, as `admins add` printed it.
    let tokens: [AdminRole: String]
    /// The CA of the admin listener's certificate (for `localhost`) when it speaks TLS.
    let tlsAuthority: TestPKI?

    /// `Authorization: Bearer` for a role's account.
    func bearer(_ role: AdminRole) -> (String, String) { ("Authorization", "Bearer \(tokens[role] ?? "none")") }

    /// One request to the admin API.
    func send(
        _ method: String, _ path: String, as role: AdminRole?, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> TestHTTPResponse {
        try await client.send(method, path, headers: (role.map { [bearer($0)] } ?? []) + headers, body: body.map { Array($0.utf8) })
    }

    /// The merchant's ETag, read through the API.
    func etag(_ id: String) async throws -> String {
        try #require(try await send("GET", "/admin/v1/merchants/\(id)", as: .viewer).header("ETag"))
    }

    /// `paths` read with GET as every role, each expected to answer 200: the bodies and headers as one text.
    func readAsEveryRole(_ paths: [String]) async throws -> String {
        var text = ""
        for role in AdminRole.allCases {
            for path in paths {
                let answer = try await send("GET", path, as: role)
                #expect(answer.status == 200, "\(path) as \(role)")
                text += answer.text + answer.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
            }
        }
        return text
    }

    /// Expects no secret in `text`: the harness's planted keys, the admin tokens' secret parts, the stored token hashes.
    func expectNoSecret(in text: String) async throws {
        // A certificate-only admin has no token, so no hash (an empty one would be "found" in any text).
        let storedHashes = try await gw.admin.listAdmins().map(\.tokenHash).filter { !$0.isEmpty } + (try await gw.admin.listCallers().compactMap(\.tokenHash))
        for secret in gw.plantedSecrets + tokens.values.map({ String($0.suffix(43)) }) + storedHashes {
            // A Bool, so that a failure does not print the text, and the secret in it, into the test log.
            let leaked = text.contains(secret)
            #expect(!leaked, "a secret is in an answer")
        }
    }

    /// (phase, caller, status, gateway error, operation id, merchant) of the audit records of a request.
    func auditRecords(_ requestID: String?) async throws -> [(String, String?, Int?, String?, String?, String?)] {
        await gw.audit.flush()
        let queue = try DatabaseQueue(path: gw.auditPath)
        return try await queue.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT phase, caller_id, status, gateway_error_code, operation_id, merchant_id FROM audit_records
                    WHERE request_id = ? ORDER BY seq
                    """, arguments: [requestID ?? "-"]
            ).map { ($0[0], $0[1], $0[2], $0[3], $0[4], $0[5]) }
        }
    }
}

/// Runs `body` against a harness gateway with the admin API and always stops both; with `tls`, the admin listener
/// speaks TLS with a certificate for `localhost` from a CA of its own, and with `clientCA` it also verifies the
/// client certificates that CA signs, when presented (`client_certificates: optional`).
func withAdminAPI(
    access: String = GatewayHarness.defaultAccess, rateLimits: String? = nil, backoff: AdminBackoff = AdminBackoff(base: .milliseconds(5), ceiling: .milliseconds(20)), tls: Bool = false,
    clientCA: TestPKI? = nil, _ body: (AdminAPIHarness) async throws -> Void
) async throws {
    try await withGateway(access: access, rateLimits: rateLimits) { gw in
        var tokens: [AdminRole: String] = [:]
        for role in AdminRole.allCases {
            tokens[role] = try await gw.admin.addAdmin(name: "\(role.rawValue)-admin", role: role).token.exposedValue
        }
        let api = AdminAPI(
            service: gw.admin, gateway: gw.service, audit: AdminAuditTrail(store: gw.auditPath, writer: gw.audit), logger: gw.logs.logger(),
            backoff: backoff)
        let authority = tls ? try TestPKI(name: "admin listener CA") : nil
        let context = try authority.map { pki in
            let identity = try pki.issueServer()
            return try ServerTLS(
                certificateChainPEM: identity.certificatePEM, privateKey: Secret(identity.privateKeyPEM), clientCAPEM: clientCA?.caCertificatePEM,
                clientAuthentication: clientCA == nil ? .none : .optional
            ).makeContext(http2: false)
        }
        let server = try await AdminServer.start(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, routes: AdminRoutes(api: api), tls: context
        ) { AdminServer.readiness(audit: gw.audit, service: gw.service) }
        let client = TestHTTPClient(port: server.port, tls: authority.map { TestTLS(trustRootsPEM: $0.caCertificatePEM) })
        let harness = AdminAPIHarness(gw: gw, server: server, client: client, tokens: tokens, tlsAuthority: authority)
        do {
            try await body(harness)
        } catch {
            try? await harness.client.close()
            await server.stop()
            throw error
        }
        try? await harness.client.close()
        await server.stop()
    }
}
