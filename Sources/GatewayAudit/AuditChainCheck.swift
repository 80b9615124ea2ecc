import Crypto
import GatewayCore

/// Verification of one node's chain, fed record by record in sequence order (constant memory), whatever store
/// the records come from: the SQLite file's single chain or each node's chain in PostgreSQL.
struct AuditChainCheck {
    private let publicKeys: [String: Curve25519.Signing.PublicKey]
    private(set) var report = VerificationReport()
    private var problems: [AuditProblem] = []
    private var checkpoints: [Int64: [AuditCheckpoint]] = [:]
    private var expectedSeq: Int64 = 1
    private var expectedPrev = AuditCanonical.genesisHash
    private var previousPrev: String?

    /// Starts a chain at its anchor (a prune's signed cut) or at genesis, knowing every checkpoint: the store's
    /// own and the trusted copies shipped elsewhere (already narrowed to this node).
    init(
        anchor: AuditCheckpoint?, stored: [AuditCheckpoint], trusted: [AuditCheckpoint],
        publicKeys: [String: Curve25519.Signing.PublicKey]
    ) {
        self.publicKeys = publicKeys
        if let anchor {
            _ = signatureOK(anchor)
            expectedSeq = anchor.seq + 1
            expectedPrev = anchor.hash
            report.anchorSeq = anchor.seq
            report.notes.append("records up to seq \(anchor.seq) were pruned; the chain starts at the anchor checkpoint")
        }
        report.lastSeq = report.anchorSeq
        report.newestCheckpointSeq = report.anchorSeq
        for checkpoint in stored where signatureOK(checkpoint) {
            checkpoints[checkpoint.seq, default: []].append(checkpoint)
        }
        for checkpoint in trusted where checkpoint.seq >= report.anchorSeq && signatureOK(checkpoint) {
            checkpoints[checkpoint.seq, default: []].append(checkpoint)
        }
        if report.anchorSeq > 0 {
            for checkpoint in checkpoints[report.anchorSeq] ?? [] where checkpoint.hash != expectedPrev {
                problem(.checkpointMismatch, report.anchorSeq, "the anchor's hash differs from checkpoint by \(checkpoint.keyID)")
            }
        }
    }

    private mutating func problem(_ kind: AuditProblem.Kind, _ seq: Int64, _ detail: String) {
        report.problemCount += 1
        if problems.count < AuditVerifier.problemLimit * 2 { problems.append(AuditProblem(kind: kind, seq: seq, detail: detail)) }
    }

    private mutating func signatureOK(_ checkpoint: AuditCheckpoint) -> Bool {
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

    /// Checks the next record: its place in the sequence, its link to the previous one, its hash, and the
    /// checkpoints signed at its sequence number.
    mutating func check(_ entry: AuditEntry) {
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
        if !AuditCanonical.knows(entry.canonicalVersion) {
            problem(.edited, entry.seq, "canonical version \(entry.canonicalVersion) is not one this build can recompute (1 or 2)")
        } else if AuditCanonical.chainHash(previous: entry.prevHash, entry: entry) != entry.hash {
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

    /// Ends the chain: a checkpoint beyond the last record means the tail was cut off.
    mutating func finish(hasTrustedFile: Bool) -> VerificationReport {
        if let newest = checkpoints.keys.max(), newest > report.lastSeq {
            report.newestCheckpointSeq = newest
            problem(.truncated, report.lastSeq + 1, "the trail ends at seq \(report.lastSeq) but a checkpoint covers seq \(newest)")
        }
        if !hasTrustedFile {
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
                .map(\.element).prefix(AuditVerifier.problemLimit))
        return report
    }
}
