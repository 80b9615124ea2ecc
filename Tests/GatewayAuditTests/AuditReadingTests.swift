import Foundation
import GRDB
import GatewayCore
import Testing

@testable import GatewayAudit

@Suite struct AuditReadingTests {
    /// Everything the store and its files hold, as text, for searching.
    private func allBytes(_ dir: TempDir) throws -> String {
        var text = ""
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.url.path) {
            text += String(decoding: try Data(contentsOf: dir.url.appendingPathComponent(name)), as: UTF8.self)
        }
        return text
    }

    @Test func onlyTheListedFieldsAreRecordedAndNoPlantedSecretLeaks() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        let planted = "PLANTED-SECRET-\(UUID().uuidString)"
        let secret = Secret(planted)
        var record = Fixtures.record(1)
        // A token path segment and a value in the query: the data plane reduces them before recording.
        let operation = Operation(
            id: "readToken", method: "GET", template: "/v2/payment/tokens/{payment_token}", scope: .merchant,
            family: "payment-token", category: "payment-token-read", introducedIn: "stable-v1", testOnly: false)
        record.path = CallRecord.recordedPath(rawTarget: "/v2/payment/tokens/\(planted)?locale=\(planted)", operation: operation)
        record.facts.target = try RequestTarget(parsing: "/v2/payment/tokens/\(planted)?locale=\(secret.exposedValue)")
        record.facts.operation = operation
        try await writer.record(record, on: Fixtures.loop).get()
        await writer.shutdown()
        for format in AuditExportFormat.allCases {
            let output = try AuditOutput(path: dir.path("export.\(format.rawValue)"))
            try AuditReader.export(path: dir.path("audit.sqlite"), filter: AuditFilter(), format: format, to: output)
            try output.close()
        }
        let everything = try allBytes(dir)
        #expect(!everything.contains(planted))
        #expect(everything.contains("/v2/payment/tokens/{payment_token}?locale"))
        let columns = try await DatabaseQueue(path: dir.path("audit.sqlite")).read { db in
            try db.columns(in: "audit_records").map(\.name)
        }
        #expect(columns == AuditEntry.fieldNames + ["prev_hash", "hash", "canonical_version"])
        #expect(AuditEntry.fieldNames.count == 34)
    }

    @Test func exportFiltersAndFormats() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 40)
        let jsonl = try AuditOutput(path: dir.path("m0.jsonl"))
        let count = try AuditReader.export(
            path: path, filter: AuditFilter(merchantID: "merchant-0", callerID: "caller-0"), format: .jsonl, to: jsonl)
        try jsonl.close()
        let expected = (1...40).filter { $0 % 2 == 0 && $0 % 3 == 0 }.count
        #expect(count == expected)
        let lines = try String(contentsOfFile: dir.path("m0.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == expected)
        let object = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        #expect(object["merchant_id"] as? String == "merchant-0")
        #expect((object["hash"] as? String)?.count == 64)

        let csv = try AuditOutput(path: dir.path("window.csv"))
        let windowed = try AuditReader.export(
            path: path, filter: AuditFilter(sinceMicros: 1_790_000_000_000_011, untilMicros: 1_790_000_000_000_021), format: .csv, to: csv)
        try csv.close()
        #expect(windowed == 10)
        let csvLines = try String(contentsOfFile: dir.path("window.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csvLines.count == 11)
        #expect(csvLines[0].hasPrefix("seq,node_id,time_us,phase"))
        #expect(csvLines[1].hasPrefix("11,node-1,"))
    }

    @Test func csvNeutralisesFormulasAndQuotes() {
        #expect(AuditExportFormat.csvField("=HYPERLINK(\"x\")") == "\"'=HYPERLINK(\"\"x\"\")\"")
        #expect(AuditExportFormat.csvField("a,b") == "\"a,b\"")
        #expect(AuditExportFormat.csvField("plain") == "plain")
    }

    @Test func statsCountCallsPerMerchantCallerAndStatus() async throws {
        let dir = try TempDir()
        let writer = Fixtures.writer(dir)
        for index in 1...30 {
            try await writer.record(Fixtures.record(index, phase: .intent), on: Fixtures.loop).get()
            try await writer.record(Fixtures.record(index), on: Fixtures.loop).get()
        }
        await writer.shutdown()
        let stats = try AuditReader.stats(path: dir.path("audit.sqlite"), filter: AuditFilter())
        #expect(stats.calls == 30)
        #expect(stats.byMerchant.map { $0.1 } == [15, 15])
        #expect(stats.byStatus.first { $0.0 == "400" }?.1 == 6)
        #expect(stats.byCaller.count == 3)
    }

    @Test func tailPrintsTheNewestRecords() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 15)
        let output = try AuditOutput(path: dir.path("tail.jsonl"))
        try await AuditReader.tail(path: path, count: 4, follow: false, to: output)
        try output.close()
        let lines = try String(contentsOfFile: dir.path("tail.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("{\"v\":2,\"seq\":12,"))
    }

    @Test func largeExportStreamsWithBoundedMemory() async throws {
        let dir = try TempDir()
        let total = 100_000
        let writer = Fixtures.writer(dir, mode: .async, checkpointEvery: 50_000, queueLimit: total + 1)
        for index in 1...total { _ = writer.record(Fixtures.record(index), on: Fixtures.loop) }
        await writer.flush()
        await writer.shutdown()
        let before = Self.residentBytes()
        let output = try AuditOutput(path: dir.path("all.jsonl"))
        let count = try AuditReader.export(path: dir.path("audit.sqlite"), filter: AuditFilter(), format: .jsonl, to: output)
        try output.close()
        let growth = Self.residentBytes() - before
        #expect(count == total)
        let size = try FileManager.default.attributesOfItem(atPath: dir.path("all.jsonl"))[.size] as! Int
        // The export is far larger than the memory it may cost.
        #expect(size > 80_000_000)
        #expect(growth < 32 * 1024 * 1024, "resident memory grew by \(growth) bytes")
        let report = try AuditVerifier.verify(path: dir.path("audit.sqlite"), publicKeys: Fixtures.trustedKeys)
        #expect(report.isIntact)
        #expect(report.recordsChecked == total)
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
