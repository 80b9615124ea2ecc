import Crypto
import Foundation
import GRDB
import GatewayCore
import GatewayPostgres

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
    /// The node whose chain it is, when the store holds several (PostgreSQL).
    public var nodeID: String?

    /// `seq N: kind (detail)`, after `node X` when the store holds several chains.
    public var description: String { (nodeID.map { "node \($0) " } ?? "") + "seq \(seq): \(kind.rawValue) (\(detail))" }
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

    /// Each node's chain, when the store holds several (PostgreSQL); empty for a SQLite file's single chain.
    public var chains: [Chain] = []

    /// What was checked of one node's chain.
    public struct Chain: Sendable {
        /// The node.
        public var nodeID: String
        /// Records whose hash was recomputed.
        public var recordsChecked: Int
        /// The chain starts after this sequence number.
        public var anchorSeq: Int64
        /// The last sequence number present.
        public var lastSeq: Int64
        /// The newest checkpoint the chain was checked against.
        public var newestCheckpointSeq: Int64
        /// Problems found in this chain.
        public var problemCount: Int
    }

    /// True only when nothing is wrong.
    public var isIntact: Bool { problemCount == 0 }

    /// Folds one node's chain report into a report over several chains.
    mutating func add(_ chain: VerificationReport, node: String) {
        chains.append(Chain(
            nodeID: node, recordsChecked: chain.recordsChecked, anchorSeq: chain.anchorSeq, lastSeq: chain.lastSeq,
            newestCheckpointSeq: chain.newestCheckpointSeq, problemCount: chain.problemCount))
        recordsChecked += chain.recordsChecked
        checkpointsChecked += chain.checkpointsChecked
        problemCount += chain.problemCount
        let room = max(0, AuditVerifier.problemLimit - problems.count)
        problems += chain.problems.prefix(room).map { problem in
            var problem = problem
            problem.nodeID = node
            return problem
        }
        for note in chain.notes where !notes.contains(note) { notes.append(note) }
    }
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

    /// Verifies the store at `path`: a SQLite file's chain, or every node's chain in a PostgreSQL trail.
    ///
    /// `publicKeys` (key id → key) are the trusted keys; when empty, each checkpoint's own public key is used,
    /// which detects edits by anyone who cannot also rewrite the checkpoint table, and the report says so.
    /// `trustedCheckpointFiles` are copies of the shipped checkpoint files (one per node): their newest
    /// checkpoints expose truncation, even of a chain deleted whole.
    public static func verify(
        path: String, trustedCheckpointFiles: [URL] = [], publicKeys: [String: Curve25519.Signing.PublicKey] = [:]
    ) throws -> VerificationReport {
        let trusted = try trustedCheckpointFiles.flatMap { try AuditCheckpoint.readFile($0) }
        let hasTrustedFile = !trustedCheckpointFiles.isEmpty
        if PostgresURL.isPostgresURL(path) {
            return try AuditPostgresReader.verify(url: path, trusted: trusted, hasTrustedFile: hasTrustedFile, publicKeys: publicKeys)
        }
        let database = try AuditDatabase.openForReading(path: path)
        defer { try? database.close() }
        var report = try database.read { db in
            guard try db.tableExists("audit_records") else { throw AuditError.io("\(path) is not an audit store") }
            let anchor = try Row.fetchOne(db, sql: "SELECT * FROM audit_anchor WHERE id = 1").map(AuditCheckpoint.init(row:))
            let nodeID = try String.fetchOne(db, sql: "SELECT node_id FROM audit_records ORDER BY seq LIMIT 1")
            let stored = try Row.fetchAll(db, sql: "SELECT * FROM audit_checkpoints ORDER BY seq").map(AuditCheckpoint.init(row:))
            var chain = AuditChainCheck(
                anchor: anchor, stored: stored, trusted: trusted.filter { nodeID == nil || $0.nodeID == nodeID }, publicKeys: publicKeys)
            let rows = try Row.fetchCursor(db, sql: "SELECT \(AuditEntry.selectColumns) FROM audit_records ORDER BY seq")
            while let row = try rows.next() { chain.check(AuditEntry(row: row)) }
            return chain.finish(hasTrustedFile: hasTrustedFile)
        }
        if publicKeys.isEmpty { report.notes.insert(AuditVerifier.untrustedKeysNote, at: 0) }
        return report
    }

    /// Verifies with at most one trusted checkpoint file.
    public static func verify(
        path: String, trustedCheckpointFile: URL?, publicKeys: [String: Curve25519.Signing.PublicKey] = [:]
    ) throws -> VerificationReport {
        try verify(path: path, trustedCheckpointFiles: trustedCheckpointFile.map { [$0] } ?? [], publicKeys: publicKeys)
    }

    static let untrustedKeysNote = "no trusted public key given: signatures were checked against the keys recorded with each checkpoint"
}

extension AuditVerifier {
    /// Verifies a prune archive: each line's hash, the chain between lines, and the closing signed checkpoint.
    ///
    /// An archive of a PostgreSQL trail holds one section per node, each closed by its own checkpoint line; the
    /// report then lists each node's chain. The first record's `prev_hash` of a section cannot be checked from
    /// the archive alone: it must equal the closing checkpoint hash of that node's previous archive (or the
    /// genesis hash for the first one).
    public static func verifyArchive(
        _ url: URL, publicKeys: [String: Curve25519.Signing.PublicKey] = [:]
    ) throws -> VerificationReport {
        var sections: [ArchiveSection] = []
        var current = ArchiveSection()
        try LineReader.forEachLine(of: url) { line in
            if line.hasPrefix("{\"checkpoint\":") {
                current.close(with: AuditCheckpoint(jsonLine: line), publicKeys: publicKeys)
                sections.append(current)
                current = ArchiveSection()
            } else {
                current.check(line)
            }
        }
        if current.report.recordsChecked > 0 || current.report.problemCount > 0 || sections.isEmpty {
            current.close(with: nil, publicKeys: publicKeys)
            sections.append(current)
        }
        if sections.count == 1 { return sections[0].report }
        var combined = VerificationReport()
        for section in sections { combined.add(section.report, node: section.nodeID ?? "?") }
        return combined
    }

    /// One chain's records in an archive, up to its closing checkpoint.
    private struct ArchiveSection {
        var report = VerificationReport()
        var nodeID: String?
        private var problems: [AuditProblem] = []
        private var previous: AuditEntry?

        private mutating func problem(_ kind: AuditProblem.Kind, _ seq: Int64, _ detail: String) {
            report.problemCount += 1
            if problems.count < problemLimit { problems.append(AuditProblem(kind: kind, seq: seq, detail: detail)) }
        }

        mutating func check(_ line: Substring) {
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
                nodeID = entry.nodeID
            }
            if !AuditCanonical.knows(entry.canonicalVersion) {
                problem(.edited, entry.seq, "canonical version \(entry.canonicalVersion) is not one this build can recompute (1 or 2)")
            } else if AuditCanonical.chainHash(previous: entry.prevHash, entry: entry) != entry.hash {
                problem(.edited, entry.seq, "fields do not match the record's hash")
            }
            previous = entry
            report.lastSeq = entry.seq
        }

        mutating func close(with closing: AuditCheckpoint?, publicKeys: [String: Curve25519.Signing.PublicKey]) {
            if let closing {
                nodeID = nodeID ?? closing.nodeID
                report.checkpointsChecked = 1
                report.newestCheckpointSeq = closing.seq
                let key = publicKeys.isEmpty
                    ? Hex.decode(closing.publicKey).flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
                    : publicKeys[closing.keyID]
                if key.map(closing.isSigned(by:)) != true {
                    problem(.badSignature, closing.seq, "closing checkpoint signature invalid or untrusted")
                }
                if closing.nodeID != nodeID {
                    problem(.checkpointMismatch, closing.seq, "closing checkpoint is node \(closing.nodeID)'s, the records are node \(nodeID ?? "?")'s")
                } else if closing.seq > report.lastSeq {
                    problem(.truncated, report.lastSeq + 1, "archive ends before its closing checkpoint at seq \(closing.seq)")
                } else if closing.seq != report.lastSeq || closing.hash != previous?.hash {
                    problem(.checkpointMismatch, closing.seq, "closing checkpoint does not match the last record")
                }
            } else {
                problem(.truncated, report.lastSeq + 1, "archive has no closing checkpoint")
            }
            if publicKeys.isEmpty { report.notes.append("no trusted public key given: the checkpoint's own key was used") }
            report.problems = problems.sorted { $0.seq < $1.seq }
        }
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
