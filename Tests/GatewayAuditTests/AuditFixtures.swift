import Crypto
import Foundation
import GRDB
import GatewayCore
import NIOCore
import NIOPosix

@testable import GatewayAudit

/// A unique directory per test, so tests run in parallel on real files.
struct TempDir {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("audit-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

enum Fixtures {
    static let loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
    static let signingKey = Curve25519.Signing.PrivateKey()
    static let signer = AuditSigner(privateKey: signingKey, keyID: "audit-test-1")
    static var trustedKeys: [String: Curve25519.Signing.PublicKey] { [signer.keyID: signingKey.publicKey] }

    /// A record with every recorded field filled in.
    static func record(_ index: Int, phase: CallRecord.Phase = .outcome, timeMicros: Int64? = nil) -> CallRecord {
        var record = CallRecord(
            phase: phase, requestID: "req-\(index)", timeMicros: timeMicros ?? (1_790_000_000_000_000 + Int64(index)),
            method: "POST", path: "/v2/accounts/acc_1/payment/authorize")
        record.facts.callerID = "caller-\(index % 3)"
        record.facts.authentication = .tokenAndCertificate
        record.facts.merchantID = "merchant-\(index % 2)"
        record.facts.partnerID = "partner-a"
        record.facts.account = "krn:partner:global:account:test:acc_1"
        record.facts.environment = .test
        record.facts.release = "stable-v1"
        record.clientAddress = "10.0.0.\(index % 250)"
        record.callerCertificateFingerprint = String(repeating: "ab", count: 32)
        record.idempotencyKey = "idem-\(index)"
        record.correlationID = "corr-\(index)"
        record.credential = CredentialRef(id: "partner:a:api-key", version: 3)
        record.upstreamCertificateFingerprint = String(repeating: "cd", count: 32)
        record.requestBodySHA256 = String(repeating: "0f", count: 32)
        record.requestBodyBytes = 120
        record.status = index % 5 == 0 ? 400 : 200
        record.klarnaErrorCode = index % 5 == 0 ? "BAD_VALUE" : nil
        record.klarnaErrorID = index % 5 == 0 ? "err-\(index)" : nil
        record.responseBodySHA256 = String(repeating: "1e", count: 32)
        record.responseBodyBytes = 512
        record.upstreamAttempts = 1
        record.upstreamLatencyMicros = 1234
        return record
    }

    static func writer(
        _ dir: TempDir, mode: AuditDurability = .commit, checkpointEvery: Int = 10, queueLimit: Int = 100_000,
        path: String? = nil
    ) -> AuditWriter {
        AuditWriter(
            path: path ?? dir.path("audit.sqlite"), nodeID: "node-1", mode: mode, signer: signer,
            checkpointEveryRecords: checkpointEvery, checkpointEverySeconds: 3600,
            checkpointFile: dir.path("checkpoints.jsonl"), queueLimit: queueLimit)
    }

    /// Writes `count` records one after another (each awaited), starting at `start`.
    static func write(_ writer: AuditWriter, count: Int, start: Int = 1) async throws {
        for index in start..<(start + count) {
            try await writer.record(record(index), on: loop).get()
        }
    }

    /// A store of `count` records, shut down (so a final checkpoint exists).
    static func store(_ dir: TempDir, count: Int, checkpointEvery: Int = 10) async throws -> String {
        let writer = writer(dir, checkpointEvery: checkpointEvery)
        try await write(writer, count: count)
        await writer.shutdown()
        return dir.path("audit.sqlite")
    }

    /// Raw SQL on the store, as an attacker with file access would run it.
    static func tamper(_ path: String, _ body: (Database) throws -> Void) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { try body($0) }
        try queue.close()
    }
}
