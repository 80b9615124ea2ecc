import GatewayCore
import Testing

@testable import GatewayAudit

/// The writer chains records from the bytes the loops packed; readers and the verifier re-encode `AuditEntry`
/// values read back. Both must give the same `v2` bytes, field for field.
@Suite struct AuditPackingTests {
    /// Every field set (and the optional ones also absent), escapes and non-ASCII included.
    static func records() -> [CallRecord] {
        var full = Fixtures.record(5)
        full.facts.operation = Operation(
            id: "createOrder", method: "POST", template: "/v2/accounts/{account_id}/orders", scope: .merchant,
            family: "order", category: "order-write", introducedIn: "stable-v1", testOnly: false)
        full.path = "/v2/ä\u{1}\n\\\"x"
        full.gatewayErrorCode = "GATEWAY_FORBIDDEN"
        full.upstreamLatencyMicros = -5
        full.facts.callerID = ""
        let bare = CallRecord(phase: .refusal, requestID: "req-bare", timeMicros: 0, method: "GET", path: "/")
        return [full, bare, Fixtures.record(6, phase: .intent)]
    }

    @Test func packedRecordsAreTheirEntriesV2Bytes() {
        var packed = AuditPackedRecords()
        let records = Self.records()
        for record in records { packed.append(record, nodeID: "node-\"1\"") }
        #expect(packed.count == records.count)
        packed.withReader { reader in
            for (index, record) in records.enumerated() {
                var entry = AuditEntry(record, nodeID: "node-\"1\"")
                entry.seq = Int64(index + 41)
                #expect(entry.canonicalVersion == 2)
                let v2 = AuditCanonical.packed(entry)
                #expect(Array(v2.prefix(9)) == [2, UInt8(index + 41), 0, 0, 0, 0, 0, 0, 0])
                #expect(Array(v2.dropFirst(9)) == Array(reader.bytes(of: index)))
            }
        }
    }

    @Test func linkedHashesMatchTheVerifiersHashes() {
        var first = AuditPackedRecords()
        var second = AuditPackedRecords()
        let records = Self.records()
        first.append(records[0], nodeID: "node-1")
        for record in records.dropFirst() { second.append(record, nodeID: "node-1") }
        var linker = AuditChainLinker(seq: 9, hash: String(repeating: "7a", count: 32))
        let links = linker.link([first, second])
        #expect(links.firstSeq == 10)
        #expect(linker.seq == 12)
        var previous = String(repeating: "7a", count: 32)
        links.withReader { hashes in
            for (index, record) in records.enumerated() {
                var entry = AuditEntry(record, nodeID: "node-1")
                entry.seq = Int64(10 + index)
                let expected = AuditCanonical.chainHash(previous: previous, entry: entry)
                #expect(String(decoding: hashes.previousHash(index), as: UTF8.self) == previous)
                #expect(String(decoding: hashes.hash(index), as: UTF8.self) == expected)
                previous = expected
            }
        }
        #expect(linker.hash == previous)
    }

    /// The word-at-a-time scan finds every byte that must be escaped, wherever it sits, and nothing else.
    @Test func escapingIsFoundAtEveryPosition() {
        for position in 0..<20 {
            for byte: UInt8 in [0x00, 0x01, 0x0A, 0x1F, UInt8(ascii: "\""), UInt8(ascii: "\\")] {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 20)
                bytes[position] = byte
                #expect(bytes.withUnsafeBufferPointer { JSONText.needsEscaping($0) }, "byte \(byte) at \(position)")
            }
            for byte: UInt8 in [0x20, 0x21, 0x23, 0x5B, 0x5D, 0x7F, 0x80, 0xC3, 0xFF] {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 20)
                bytes[position] = byte
                #expect(!bytes.withUnsafeBufferPointer { JSONText.needsEscaping($0) }, "byte \(byte) at \(position)")
            }
        }
    }
}
