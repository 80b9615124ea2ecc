import Crypto
import Foundation
import GRDB
import GatewayCore
import GatewayPostgres
import GatewayTestSupport
import Logging
import PostgresNIO
import Testing

@testable import GatewayAudit

/// Records chain in `v2` (the packed bytes) since the trail stored each record's canonical version; records from
/// before hash their `v1` JSON text. A trail holding both verifies, reads and exports as one chain, from SQLite and
/// PostgreSQL, and an independent script recomputes either from an export.
@Suite struct AuditCanonicalVersionTests {
    /// A node's chain of 100 `v1` records and its closing checkpoint, written by a build from before `v2`.
    struct V1Trail {
        let lines: [Substring]
        let entries: [AuditEntry]
        let checkpoint: AuditCheckpoint

        init() throws {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/v1-trail-before-loop-batching.jsonl")
            let text = try String(contentsOf: url, encoding: .utf8)
            let all = text.split(separator: "\n")
            lines = all.filter { !$0.hasPrefix("{\"checkpoint\"") }
            entries = lines.compactMap { AuditEntry(jsonLine: $0) }
            let closing = try JSONSerialization.jsonObject(with: Data(all.last!.utf8)) as! [String: Any]
            let fields = closing["checkpoint"] as! [String: Any]
            checkpoint = AuditCheckpoint(
                nodeID: fields["node_id"] as! String, seq: (fields["seq"] as! NSNumber).int64Value,
                timeMicros: (fields["time_us"] as! NSNumber).int64Value, hash: fields["hash"] as! String,
                keyID: fields["key_id"] as! String, publicKey: fields["public_key"] as! String, signature: fields["signature"] as! String)
        }

        /// The archive's key and the tests' own: the old records are signed by one, the new by the other.
        var keys: [String: Curve25519.Signing.PublicKey] {
            var keys = Fixtures.trustedKeys
            keys[checkpoint.keyID] = try? Curve25519.Signing.PublicKey(rawRepresentation: Hex.decode(checkpoint.publicKey)!)
            return keys
        }
    }

    /// A SQLite store as a build from before `v2` left it: the old records, no `canonical_version` column, the
    /// migration that adds it not applied.
    static func v1Store(_ dir: TempDir, _ trail: V1Trail) throws -> String {
        let path = dir.path("audit.sqlite")
        let queue = try DatabaseQueue(path: path)
        try AuditDatabase.migrator().migrate(queue)
        try queue.write { db in
            for entry in trail.entries { try db.execute(sql: AuditEntry.insertSQL, arguments: entry.insertArguments) }
            try db.execute(sql: AuditCheckpoint.insertSQL, arguments: trail.checkpoint.insertArguments)
        }
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "ALTER TABLE audit_records DROP COLUMN canonical_version")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'canonical-version'")
        }
        try queue.close()
        return path
    }

    static func export(_ path: String, to file: String) throws -> [Substring] {
        let output = try AuditOutput(path: file)
        try AuditReader.export(path: path, filter: AuditFilter(), format: .jsonl, to: output)
        try output.close()
        return try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
    }

    /// The admin API's page and latest records, and the stats, read an un-migrated trail's records as `v1`.
    static func expectReadAsBefore(_ path: String, _ trail: V1Trail) throws {
        let page = try AuditReader.page(path: path, filter: AuditFilter(), after: nil, limit: 30)
        #expect(page.entries == Array(trail.entries.prefix(30)))
        #expect(try AuditReader.latest(path: path, filter: AuditFilter(), limit: 5) == Array(trail.entries.suffix(5)))
        #expect(try AuditReader.stats(path: path, filter: AuditFilter()).calls == 50)
    }

    /// After `writeAfter`: the chain verifies whole, the export shows the old lines unchanged and the new ones as
    /// `v2`, and a script that shares no code with the gateway recomputes every hash from it. Returns the export.
    static func expectWentOnInV2(_ path: String, _ trail: V1Trail, _ dir: TempDir) throws -> [Substring] {
        let after = try AuditVerifier.verify(path: path, publicKeys: trail.keys)
        #expect(after.isIntact, "\(after.problems)")
        #expect(after.recordsChecked == 112)
        let lines = try export(path, to: dir.path("after.jsonl"))
        #expect(Array(lines.prefix(100)) == trail.lines)
        #expect(lines[100].hasPrefix("{\"v\":2,\"seq\":101,"))
        let checked = try script(dir.path("after.jsonl"))
        #expect(checked.status == 0, "\(checked.output)")
        #expect(checked.output.contains("112 records verified"))
        return lines
    }

    /// Writes `lines` as the export file `name`.jsonl in `dir` and runs the script on it.
    static func script(_ lines: [Substring], as name: String, in dir: TempDir) throws -> (status: Int32, output: String) {
        let file = dir.path("\(name).jsonl")
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        return try script(file)
    }

    /// Runs docs/examples/verify-audit-export.py on `file`: its exit status and what it printed.
    static func script(_ file: String, _ options: String...) throws -> (status: Int32, output: String) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/examples/verify-audit-export.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path] + options + [file]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Records 101 to 112, timed after the old ones (an export merged by time keeps them last).
    static func writeAfter(_ trail: V1Trail, to writer: AuditWriter) async throws {
        for index in 101...112 {
            try await writer.record(Fixtures.record(index, timeMicros: trail.checkpoint.timeMicros + Int64(index)), on: Fixtures.loop).get()
        }
    }

    @Test func aStoreOfV1RecordsReadsAsBeforeAndGoesOnInV2() async throws {
        let dir = try TempDir()
        let trail = try V1Trail()
        #expect(trail.entries.count == 100)
        let path = try Self.v1Store(dir, trail)

        // Read as it is, by a reader that may not change it: verified, and exported byte for byte as the old
        // build exported it.
        let before = try AuditVerifier.verify(path: path, publicKeys: trail.keys)
        #expect(before.isIntact, "\(before.problems)")
        #expect(before.recordsChecked == 100)
        #expect(try Self.export(path, to: dir.path("before.jsonl")) == trail.lines)
        try Self.expectReadAsBefore(path, trail)

        // A writer of this build migrates the store and goes on with the same chain in `v2`.
        let writer = AuditWriter(
            path: path, nodeID: trail.checkpoint.nodeID, mode: .commit, signer: Fixtures.signer, checkpointEveryRecords: 10,
            checkpointEverySeconds: 3600)
        #expect(writer.health.lastSeq == 100)
        try await Self.writeAfter(trail, to: writer)
        await writer.shutdown()
        let versions = try await DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "SELECT canonical_version, COUNT(*) AS n, MIN(seq) AS low, MAX(seq) AS high FROM audit_records GROUP BY 1 ORDER BY 1")
                .map { [$0[0], $0[1], $0[2], $0[3]] as [Int64] }
        }
        #expect(versions == [[1, 100, 1, 100], [2, 12, 101, 112]])
        #expect(try AuditVerifier.verify(path: path, publicKeys: trail.keys).newestCheckpointSeq == 112)
        let lines = try Self.expectWentOnInV2(path, trail, dir)

        // The script catches a record left out, one given twice, and a tail cut off below its closing checkpoint;
        // lines out of order (an export merged by time) pass, and a filtered export passes with `--filtered` only.
        var deleted = lines
        deleted.remove(at: 49)
        let twice = lines + [lines[106]]
        let cut: [Substring] = Array(lines[..<20]) + [Substring(Self.closingLine(trail.checkpoint))]
        let broken: [(String, [Substring], String)] = [
            ("deleted", deleted, "line 50 (seq 51): node crash's records missing after seq 49"),
            ("twice", twice, "line 113 (seq 107): node crash's seq 107 is given twice"),
            ("cut", cut, "line 21: the closing checkpoint does not name its node's last record"),
        ]
        for (name, edited, message) in broken {
            let refused = try Self.script(edited, as: name, in: dir)
            #expect(refused.status == 1, "\(name)")
            #expect(refused.output.contains(message), "\(name): \(refused.output)")
        }
        var swapped = lines
        swapped.swapAt(105, 106)
        #expect(try Self.script(swapped, as: "swapped", in: dir).status == 0)
        let filtered = Array(lines.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        #expect(try Self.script(filtered, as: "filtered", in: dir).status == 1)
        let passed = try Self.script(dir.path("filtered.jsonl"), "--filtered")
        #expect(passed.status == 0, "\(passed.output)")
        #expect(passed.output.contains("38 records verified"))

        // The script catches an edit in either version (it can fail).
        for (line, edit) in [(5, ("\"phase\":\"outcome\"", "\"phase\":\"intent\"")), (106, ("\"status\":200", "\"status\":201"))] {
            var edited = lines
            #expect(edited[line - 1].contains(edit.0))
            edited[line - 1] = Substring(edited[line - 1].replacingOccurrences(of: edit.0, with: edit.1))
            let refused = try Self.script(edited, as: "edited", in: dir)
            #expect(refused.status == 1)
            #expect(refused.output.contains("line \(line) (seq \(line)): fields do not match the record's hash"), "\(refused.output)")
        }
    }

    /// An archive's closing checkpoint line, as `audit prune` writes it.
    static func closingLine(_ checkpoint: AuditCheckpoint) -> String {
        #"{"checkpoint":{"v":1,"node_id":"\#(checkpoint.nodeID)","seq":\#(checkpoint.seq),"time_us":\#(checkpoint.timeMicros),"hash":"\#(checkpoint.hash)"}}"#
    }

    /// Values that stress the encoding (an empty text next to a null, escapes, non-ASCII, a negative integer)
    /// come back from the store as they were hashed: the chain verifies, and so does the script.
    @Test func unusualValuesRoundTripThroughTheStore() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        for record in AuditPackingTests.records() { try await writer.record(record, on: Fixtures.loop).get() }
        await writer.shutdown()
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact, "\(report.problems)")
        #expect(report.recordsChecked == 3)
        _ = try Self.export(dir.path("audit.sqlite"), to: dir.path("export.jsonl"))
        let checked = try Self.script(dir.path("export.jsonl"))
        #expect(checked.status == 0, "\(checked.output)")
    }

    @Test func aRecordsVersionIsCoveredByItsHash() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 30)
        try Fixtures.tamper(path) { db in
            try db.execute(sql: "UPDATE audit_records SET canonical_version = 1 WHERE seq = 7")
            try db.execute(sql: "UPDATE audit_records SET canonical_version = 3 WHERE seq = 12")
        }
        let report = try AuditVerifier.verify(path: path, publicKeys: Fixtures.trustedKeys)
        #expect(report.problems.map(\.kind) == [.edited, .edited])
        #expect(report.problems.map(\.seq) == [7, 12])
        #expect(report.problems.last?.detail.contains("canonical version 3 is not one this build can recompute") == true)
    }

    /// The same on PostgreSQL: a trail migrated before the column, read by a reader that may not change it, then
    /// migrated by a writer of this build, which goes on with the node's chain in `v2`.
    @Test(.enabled(if: AuditPostgresTests.serverURL != nil || AuditPostgresTests.required, "needs PostgreSQL: run under bin/with-postgres"))
    func aPostgresTrailOfV1RecordsReadsAsBeforeAndGoesOnInV2() async throws {
        let url = try await AuditPostgresTests.database()
        let dir = try TempDir()
        let trail = try V1Trail()
        let (entries, checkpoint) = (trail.entries, trail.checkpoint)
        try await AuditPostgresTests.onThread {
            let logger = Logger(label: "v1-trail", factory: { _ in SwiftLogNoOpLogHandler() })
            let connection = try PostgresConnection.blockingConnect(try PostgresURL(url), id: 8, logger: logger)
            defer { try? connection.close().wait() }
            try AuditPostgresSchema.migrate(connection, logger: logger)
            _ = try connection.blockingQuery(AuditPostgresBackend.insert([entries], checkpoint: checkpoint)!, logger: logger)
        }
        try await AuditPostgresTests.tamper(
            url, "ALTER TABLE audit_records DROP COLUMN canonical_version", "DELETE FROM audit_schema_migrations WHERE version = 2")

        let before = try AuditVerifier.verify(path: url, publicKeys: trail.keys)
        #expect(before.isIntact, "\(before.problems)")
        #expect(before.recordsChecked == 100)
        #expect(try Self.export(url, to: dir.path("before.jsonl")) == trail.lines)
        try Self.expectReadAsBefore(url, trail)

        // A role that may only read (what an auditor's or a standby's connection is) reads it the same.
        let role = TestPostgres.databaseName("kgw_reader_")
        try await AuditPostgresTests.tamper(
            url, "CREATE ROLE \(role) LOGIN", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \(role)",
            "ALTER ROLE \(role) SET default_transaction_read_only = on")
        let readOnly = url.replacingOccurrences(of: "postgres://postgres@", with: "postgres://\(role)@")
        #expect(readOnly != url)
        let asReader = try AuditVerifier.verify(path: readOnly, publicKeys: trail.keys)
        #expect(asReader.isIntact, "\(asReader.problems)")
        #expect(asReader.recordsChecked == 100)
        #expect(try Self.export(readOnly, to: dir.path("read-only.jsonl")) == trail.lines)

        let writer = AuditPostgresTests.writer(url, node: checkpoint.nodeID)
        try await Self.writeAfter(trail, to: writer)
        await writer.shutdown()
        _ = try Self.expectWentOnInV2(url, trail, dir)
    }

    /// `store copy --audit-from` moves a SQLite chain of both versions into PostgreSQL with each record's version,
    /// and unusual values survive PostgreSQL as they do SQLite.
    @Test(.enabled(if: AuditPostgresTests.serverURL != nil || AuditPostgresTests.required, "needs PostgreSQL: run under bin/with-postgres"))
    func aChainOfBothVersionsIsCopiedIntoPostgres() async throws {
        let dir = try TempDir()
        let trail = try V1Trail()
        let path = try Self.v1Store(dir, trail)
        let writer = AuditWriter(
            path: path, nodeID: trail.checkpoint.nodeID, mode: .commit, signer: Fixtures.signer, checkpointEveryRecords: 10,
            checkpointEverySeconds: 3600)
        try await Self.writeAfter(trail, to: writer)
        for record in AuditPackingTests.records() { try await writer.record(record, on: Fixtures.loop).get() }
        await writer.shutdown()

        let url = try await AuditPostgresTests.database()
        let report = try AuditCopy.copy(from: path, to: url)
        #expect(report.records == 115)
        let copied = try AuditVerifier.verify(path: url, publicKeys: trail.keys)
        #expect(copied.isIntact, "\(copied.problems)")
        #expect(copied.recordsChecked == 115)
        let sqliteLines = try Self.export(path, to: dir.path("sqlite.jsonl"))
        let postgresLines = try Self.export(url, to: dir.path("postgres.jsonl"))
        #expect(Set(postgresLines) == Set(sqliteLines))
        #expect(postgresLines.filter { $0.hasPrefix("{\"v\":1,") }.count == 100)
        let checked = try Self.script(dir.path("postgres.jsonl"), "--filtered")
        #expect(checked.status == 0, "\(checked.output)")
    }
}
