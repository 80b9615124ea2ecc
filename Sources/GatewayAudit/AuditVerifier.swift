import Crypto
import Foundation
import GRDB
import GatewayCore

/// One thing wrong with a trail, at the first sequence number it affects.
public struct AuditProblem: Sendable, Equatable, CustomStringConvertible {
    /// What kind of tampering (or damage) the evidence points to.
    public enum Kind: String, Sendable {
        /// A record's fields no longer match its hash.
        case edited
        /// A sequence number is missing.
        case deleted
        /// A record does not chain from its predecessor.
        case reordered
        /// A record chains from the same predecessor as the next one: it was slipped in.
        case inserted
        /// The trail ends before a checkpoint the verifier was given.
        case truncated
        /// A checkpoint's hash differs from the record at its sequence number: the chain was recomputed.
        case checkpointMismatch
        /// A checkpoint's signature is invalid or made by a key the verifier does not trust.
        case badSignature
    }

    /// The kind.
    public var kind: Kind
    /// The first sequence number affected.
    public var seq: Int64
    /// Human detail for the report.
    public var detail: String

    /// `seq N: kind (detail)`.
    public var description: String { "seq \(seq): \(kind.rawValue) (\(detail))" }
}

/// What `audit verify` found.
public struct VerificationReport: Sendable {
    /// Records whose chain was recomputed.
    public var recordsChecked = 0
    /// Checkpoints whose signatures were checked.
    public var checkpointsChecked = 0
    /// The sequence number the chain started after (0, or a prune's anchor).
    public var anchorSeq: Int64 = 0
    /// The last sequence number present.
    public var lastSeq: Int64 = 0
    /// The newest checkpoint the trail was checked against.
    public var newestCheckpointSeq: Int64 = 0
    /// Problems in sequence order (at most `problemLimit`), the first being the first bad sequence number.
    public var problems: [AuditProblem] = []
    /// Problems found, including those not listed.
    public var problemCount = 0
    /// Caveats about what the verification could prove.
    public var notes: [String] = []

    /// True only when nothing is wrong.
    public var isIntact: Bool { problemCount == 0 }
    /// The first bad record.
    public var firstProblem: AuditProblem? { problems.first }
}

/// Recomputes the chain with a cursor (constant memory) and checks every checkpoint's signature.
public enum AuditVerifier {
    /// How many problems a report lists.
    public static let problemLimit = 100

    /// Parses `KEY_ID=HEX` specifications (32-byte raw Ed25519 public keys) into trusted keys.
    public static func trustedKeys(parsing specs: [String]) throws -> [String: Curve25519.Signing.PublicKey] {
        var keys: [String: Curve25519.Signing.PublicKey] = [:]
        for spec in specs {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let raw = Hex.decode(parts[1]),
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else { throw AuditError.io("a trusted key is KEY_ID=HEX (32-byte Ed25519 public key), not \(spec)") }
            keys[parts[0]] = key
        }
        return keys
    }

    /// Verifies the store at `path`.
    ///
    /// `publicKeys` (key id → key) are the trusted keys; when empty, each checkpoint's own public key is used,
    /// which detects edits by anyone who cannot also rewrite the checkpoint table, and the report says so.
    /// `trustedCheckpointFile` is a copy of the shipped checkpoint file: its newest checkpoint exposes truncation.
    public static func verify(
        path: String, trustedCheckpointFile: URL? = nil, publicKeys: [String: Curve25519.Signing.PublicKey] = [:]
    ) throws -> VerificationReport {
        var report = VerificationReport()
        var problems: [AuditProblem] = []
        func problem(_ kind: AuditProblem.Kind, _ seq: Int64, _ detail: String) {
            report.problemCount += 1
            if problems.count < problemLimit * 2 { problems.append(AuditProblem(kind: kind, seq: seq, detail: detail)) }
        }
        func signatureOK(_ checkpoint: AuditCheckpoint) -> Bool {
            report.checkpointsChecked += 1
            let key: Curve25519.Signing.PublicKey?
            if publicKeys.isEmpty {
                key = Hex.decode(checkpoint.publicKey).flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
            } else {
                key = publicKeys[checkpoint.keyID]
            }
            guard let key else {
                problem(.badSignature, checkpoint.seq, "checkpoint signed by untrusted key \(checkpoint.keyID)")
                return false
            }
            guard checkpoint.isSigned(by: key) else {
                problem(.badSignature, checkpoint.seq, "checkpoint signature invalid (key \(checkpoint.keyID))")
                return false
            }
            return true
        }
        if publicKeys.isEmpty {
            report.notes.append(
                "no trusted public key given: signatures were checked against the keys recorded with each checkpoint")
        }
        var trusted: [AuditCheckpoint] = []
        if let trustedCheckpointFile { trusted = try AuditCheckpoint.readFile(trustedCheckpointFile) }

        let database = try AuditDatabase.openForReading(path: path)
        defer { try? database.close() }
        try database.read { db in
            guard try db.tableExists("audit_records") else { throw AuditError.io("\(path) is not an audit store") }
            var expectedSeq: Int64 = 1
            var expectedPrev = AuditCanonical.genesisHash
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM audit_anchor WHERE id = 1") {
                let anchor = AuditCheckpoint(row: row)
                _ = signatureOK(anchor)
                expectedSeq = anchor.seq + 1
                expectedPrev = anchor.hash
                report.anchorSeq = anchor.seq
                report.notes.append("records up to seq \(anchor.seq) were pruned; the chain starts at the anchor checkpoint")
            }
            report.lastSeq = report.anchorSeq
            report.newestCheckpointSeq = report.anchorSeq
            let nodeID = try String.fetchOne(db, sql: "SELECT node_id FROM audit_records ORDER BY seq LIMIT 1")
            var checkpoints: [Int64: [AuditCheckpoint]] = [:]
            let stored = try Row.fetchCursor(db, sql: "SELECT * FROM audit_checkpoints ORDER BY seq")
            while let row = try stored.next() {
                let checkpoint = AuditCheckpoint(row: row)
                if signatureOK(checkpoint) { checkpoints[checkpoint.seq, default: []].append(checkpoint) }
            }
            for checkpoint in trusted where nodeID == nil || checkpoint.nodeID == nodeID {
                if checkpoint.seq < report.anchorSeq { continue }
                if signatureOK(checkpoint) { checkpoints[checkpoint.seq, default: []].append(checkpoint) }
            }
            for checkpoint in checkpoints[report.anchorSeq] ?? [] where checkpoint.hash != expectedPrev && report.anchorSeq > 0 {
                problem(.checkpointMismatch, report.anchorSeq, "the anchor's hash differs from checkpoint by \(checkpoint.keyID)")
            }

            var previousPrev: String?
            let rows = try Row.fetchCursor(db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records ORDER BY seq")
            while let row = try rows.next() {
                let entry = AuditEntry(row: row)
                report.recordsChecked += 1
                if entry.seq > expectedSeq {
                    let missing = entry.seq - expectedSeq
                    problem(.deleted, expectedSeq, "\(missing) record\(missing == 1 ? "" : "s") missing before seq \(entry.seq)")
                    expectedPrev = entry.prevHash
                } else if entry.seq < expectedSeq {
                    problem(.reordered, entry.seq, "sequence number goes backwards")
                } else if entry.prevHash != expectedPrev {
                    if let previousPrev, entry.prevHash == previousPrev {
                        problem(.inserted, entry.seq - 1, "seq \(entry.seq - 1) was inserted: seq \(entry.seq) chains from its predecessor")
                    } else {
                        problem(.reordered, entry.seq, "does not chain from seq \(entry.seq - 1)")
                    }
                }
                let recomputed = AuditCanonical.chainHash(previous: entry.prevHash, entry: entry)
                if recomputed != entry.hash {
                    problem(.edited, entry.seq, "fields do not match the record's hash")
                }
                for checkpoint in checkpoints[entry.seq] ?? [] {
                    report.newestCheckpointSeq = max(report.newestCheckpointSeq, checkpoint.seq)
                    if checkpoint.hash != entry.hash {
                        problem(.checkpointMismatch, entry.seq, "hash differs from the signed checkpoint: records up to here were rewritten")
                    }
                }
                previousPrev = entry.prevHash
                expectedPrev = entry.hash
                expectedSeq = entry.seq + 1
                report.lastSeq = entry.seq
            }
            if let newest = checkpoints.keys.max(), newest > report.lastSeq {
                report.newestCheckpointSeq = newest
                problem(.truncated, report.lastSeq + 1, "the trail ends at seq \(report.lastSeq) but a checkpoint covers seq \(newest)")
            }
        }
        if trustedCheckpointFile == nil {
            report.notes.append("no checkpoint file given: a truncated tail is only detected against the store's own checkpoints")
        }
        if report.lastSeq > report.newestCheckpointSeq {
            report.notes.append("records after seq \(report.newestCheckpointSeq) are chained but not yet covered by a signed checkpoint")
        }
        // The most specific explanation of a sequence number comes first: a slipped-in record also breaks the
        // checkpoint at its position, but "inserted" is what the investigator needs to read.
        let rank: [AuditProblem.Kind: Int] = [
            .deleted: 0, .inserted: 1, .reordered: 2, .edited: 3, .truncated: 4, .checkpointMismatch: 5, .badSignature: 6,
        ]
        report.problems = Array(
            problems.enumerated()
                .sorted { ($0.element.seq, rank[$0.element.kind] ?? 9, $0.offset) < ($1.element.seq, rank[$1.element.kind] ?? 9, $1.offset) }
                .map(\.element).prefix(problemLimit))
        return report
    }
}

extension AuditVerifier {
    /// Verifies a prune archive: each line's hash, the chain between lines, and the closing signed checkpoint.
    ///
    /// The first record's `prev_hash` cannot be checked from the archive alone: it must equal the closing
    /// checkpoint hash of the previous archive (or the genesis hash for the first one).
    public static func verifyArchive(
        _ url: URL, publicKeys: [String: Curve25519.Signing.PublicKey] = [:]
    ) throws -> VerificationReport {
        var report = VerificationReport()
        var problems: [AuditProblem] = []
        func problem(_ kind: AuditProblem.Kind, _ seq: Int64, _ detail: String) {
            report.problemCount += 1
            if problems.count < problemLimit { problems.append(AuditProblem(kind: kind, seq: seq, detail: detail)) }
        }
        var previous: AuditEntry?
        var closing: AuditCheckpoint?
        try LineReader.forEachLine(of: url) { line in
            if line.hasPrefix("{\"checkpoint\":") {
                closing = AuditCheckpoint(jsonLine: line)
                return
            }
            guard let entry = AuditEntry(jsonLine: line) else {
                problem(.edited, (previous?.seq ?? report.anchorSeq) + 1, "unreadable line")
                return
            }
            report.recordsChecked += 1
            if let previous {
                if entry.seq != previous.seq + 1 {
                    problem(entry.seq > previous.seq + 1 ? .deleted : .reordered, previous.seq + 1, "sequence jumps to \(entry.seq)")
                } else if entry.prevHash != previous.hash {
                    problem(.reordered, entry.seq, "does not chain from seq \(previous.seq)")
                }
            } else {
                report.anchorSeq = entry.seq - 1
            }
            if AuditCanonical.chainHash(previous: entry.prevHash, entry: entry) != entry.hash {
                problem(.edited, entry.seq, "fields do not match the record's hash")
            }
            previous = entry
            report.lastSeq = entry.seq
        }
        if let closing {
            report.checkpointsChecked = 1
            report.newestCheckpointSeq = closing.seq
            let key = publicKeys.isEmpty
                ? Hex.decode(closing.publicKey).flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
                : publicKeys[closing.keyID]
            if key.map(closing.isSigned(by:)) != true {
                problem(.badSignature, closing.seq, "closing checkpoint signature invalid or untrusted")
            }
            if closing.seq > report.lastSeq {
                problem(.truncated, report.lastSeq + 1, "archive ends before its closing checkpoint at seq \(closing.seq)")
            } else if closing.seq != report.lastSeq || closing.hash != previous?.hash {
                problem(.checkpointMismatch, closing.seq, "closing checkpoint does not match the last record")
            }
        } else {
            problem(.truncated, report.lastSeq + 1, "archive has no closing checkpoint")
        }
        if publicKeys.isEmpty { report.notes.append("no trusted public key given: the checkpoint's own key was used") }
        report.problems = problems.sorted { $0.seq < $1.seq }
        return report
    }
}

extension AuditEntry {
    /// Reads an export or archive JSONL line back; nil when it is not a record line.
    init?(jsonLine line: Substring) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
            object["seq"] != nil, object["hash"] != nil
        else { return nil }
        var values: [String: (any DatabaseValueConvertible)?] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: values[key] = text
            case let number as NSNumber: values[key] = number.int64Value
            default: break  // JSON null: a missing column reads as nil
            }
        }
        self.init(namedRow: Row(values))
    }
}
