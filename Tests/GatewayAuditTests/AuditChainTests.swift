import Crypto
import Foundation
import GRDB
import GatewayCore
import Testing

@testable import GatewayAudit

@Suite struct AuditChainTests {
    @Test func chainIsIntactAndCheckpointsAreSignedAndShipped() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 25)
        let report = try AuditVerifier.verify(
            path: path, trustedCheckpointFile: dir.url.appendingPathComponent("checkpoints.jsonl"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 25)
        #expect(report.newestCheckpointSeq == 25)
        let shipped = try AuditCheckpoint.readFile(dir.url.appendingPathComponent("checkpoints.jsonl"))
        #expect(shipped.map(\.seq) == [10, 20, 25])
        #expect(shipped.allSatisfy { $0.isSigned(by: Fixtures.signingKey.publicKey) })
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func hashIsSHA256OfPreviousHashAndCanonicalEncoding() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 2)
        let queue = try DatabaseQueue(path: path)
        let entries = try await queue.read { try Row.fetchAll($0, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records ORDER BY seq").map(AuditEntry.init(row:)) }
        let first = entries[0]
        let second = entries[1]
        #expect(first.prevHash == AuditCanonical.genesisHash)
        #expect(second.prevHash == first.hash)
        // `v2`, as docs/audit.md defines it, built here from the values read back rather than by the gateway's code.
        #expect(first.canonicalVersion == 2)
        var bytes = [UInt8](repeating: 0, count: 32) + [2]
        withUnsafeBytes(of: first.seq.littleEndian) { bytes += $0 }
        for value in first.fieldValues.dropFirst() {
            switch value {
            case .text(nil), .integer(nil): bytes.append(0)
            case .text(let text?):
                bytes.append(1)
                withUnsafeBytes(of: UInt32(text.utf8.count).littleEndian) { bytes += $0 }
                bytes += Array(text.utf8)
            case .integer(let number?):
                bytes.append(2)
                withUnsafeBytes(of: number.littleEndian) { bytes += $0 }
            }
        }
        #expect(Hex.encode(SHA256Digest.of(bytes)) == first.hash)
        // `v1`, which records written before `v2` hash: the JSON text.
        var old = first
        old.canonicalVersion = AuditCanonical.textVersion
        let canonical = AuditCanonical.encode(old)
        #expect(canonical.hasPrefix("{\"v\":1,\"seq\":1,\"node_id\":\"node-1\",\"time_us\":"))
        #expect(AuditCanonical.chainHash(previous: old.prevHash, entry: old) == Hex.encode(SHA256Digest.of([UInt8](repeating: 0, count: 32) + Array(canonical.utf8))))
        #expect(AuditCanonical.encode(first).hasPrefix("{\"v\":2,\"seq\":1,"))
        try queue.close()
    }

    @Test func aKeyTheVerifierDoesNotTrustIsReported() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 12)
        let other = Curve25519.Signing.PrivateKey().publicKey
        let report = try AuditVerifier.verify(path: path, publicKeys: ["audit-test-1": other])
        #expect(!report.isIntact)
        #expect(report.firstProblem?.kind == .badSignature)
        #expect(report.firstProblem?.seq == 10)
    }

    @Test func writerResumesTheChainAfterRestart() async throws {
        let dir = try TempDir()
        _ = try await Fixtures.store(dir, count: 7)
        let writer = Fixtures.writer(dir)
        #expect(writer.health.lastSeq == 7)
        try await Fixtures.write(writer, count: 5, start: 8)
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.lastSeq == 12)
    }

    @Test func concurrentCallersAreGroupCommittedInOneChain() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, checkpointEvery: 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    for index in 0..<50 { try await writer.record(Fixtures.record(worker * 1000 + index), on: Fixtures.loop).get() }
                }
            }
            try await group.waitForAll()
        }
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 800)
    }

    @Test func idleTailIsCheckpointedAfterTheConfiguredSeconds() async throws {
        let dir = try TempDir()
        let writer = AuditWriter(
            path: dir.path("audit.sqlite"), nodeID: "node-1", signer: Fixtures.signer, checkpointEveryRecords: 1000,
            checkpointEverySeconds: 0.2, checkpointFile: dir.path("checkpoints.jsonl"))
        try await Fixtures.write(writer, count: 3)
        // Due 0.2 s after the last write, but the worker's timer may fire much later on a loaded machine.
        let deadline = ContinuousClock.now + .seconds(30)
        while writer.health.lastCheckpointSeq != 3 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(writer.health.lastCheckpointSeq == 3)
        // The file is appended off the writer's thread; `flush` waits for it.
        await writer.flush()
        let shipped = try AuditCheckpoint.readFile(dir.url.appendingPathComponent("checkpoints.jsonl"))
        #expect(shipped.last?.seq == 3)
        await writer.shutdown()
    }

    @Test func settingsDecodeWithDefaults() throws {
        let json = #"{"path": "/var/lib/kgw/audit.sqlite", "mode": "fsync", "queue_limit": 5}"#
        let settings = try JSONDecoder().decode(AuditSettings.self, from: Data(json.utf8))
        #expect(settings.path == "/var/lib/kgw/audit.sqlite")
        #expect(settings.mode == .fsync)
        #expect(settings.queueLimit == 5)
        #expect(settings.checkpointEveryRecords == AuditSettings().checkpointEveryRecords)
    }

    @Test func asyncModeAcknowledgesOnEnqueueAndWritesOnFlush() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir, mode: .async)
        for index in 1...300 { try await writer.record(Fixtures.record(index), on: Fixtures.loop).get() }
        await writer.flush()
        #expect(writer.health.lastSeq == 300)
        await writer.shutdown()
        #expect(try AuditVerifier.verify(path: dir.path("audit.sqlite")).isIntact)
    }
}

extension SHA256Digest {
    static func of(_ bytes: [UInt8]) -> SHA256Digest { SHA256.hash(data: bytes) }
}
