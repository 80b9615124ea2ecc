import Foundation
import GatewayCore
import Testing

@testable import GatewayAudit

/// `AuditReader.page`, the admin API's read of the trail: the same records, in the same order, as `audit export`,
/// a page at a time, on SQLite and on PostgreSQL (every node's chain merged).
@Suite struct AuditPageTests {
    /// Every record matching `filter`, read `limit` at a time.
    static func walk(_ path: String, _ filter: AuditFilter = AuditFilter(), limit: Int) throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        var cursor: AuditCursor?
        for _ in 0..<1_000 {
            let page = try AuditReader.page(path: path, filter: filter, after: cursor, limit: limit)
            #expect(page.entries.count <= limit)
            entries += page.entries
            guard let next = page.next else { return entries }
            cursor = next
        }
        Issue.record("the walk did not end")
        return entries
    }

    /// What `audit export --format jsonl` writes for `filter`, as entries.
    static func exported(_ path: String, _ filter: AuditFilter = AuditFilter()) throws -> [AuditEntry] {
        let dir = try TempDir()
        let output = try AuditOutput(path: dir.path("export.jsonl"))
        try AuditReader.export(path: path, filter: filter, format: .jsonl, to: output)
        try output.close()
        return try String(contentsOfFile: dir.path("export.jsonl"), encoding: .utf8).split(separator: "\n").compactMap { AuditEntry(jsonLine: $0) }
    }

    @Test func pagesOfASQLiteTrailAreTheExportAPageAtATimeAndFilterByRequestMerchantAndCaller() async throws {
        let dir = try TempDir()
        let path = try await Fixtures.store(dir, count: 23)
        let all = try Self.exported(path)
        #expect(all.count == 23)
        #expect(try Self.walk(path, limit: 5).map(\.hash) == all.map(\.hash))
        #expect(try Self.walk(path, limit: 23).map(\.hash) == all.map(\.hash))
        #expect(try AuditReader.page(path: path, filter: AuditFilter(), after: nil, limit: 23).next == nil, "no next page after the last record")

        let one = try AuditReader.page(path: path, filter: AuditFilter(requestID: "req-7"), after: nil, limit: 50)
        #expect(one.entries.map(\.requestID) == ["req-7"])
        let merchant = AuditFilter(merchantID: "merchant-1", callerID: "caller-0")
        #expect(try Self.walk(path, merchant, limit: 2).map(\.hash) == Self.exported(path, merchant).map(\.hash))
        #expect(try Self.walk(path, merchant, limit: 2).map(\.requestID) == ["req-3", "req-9", "req-15", "req-21"])
        #expect(try AuditReader.page(path: path, filter: AuditFilter(gatewayErrorCode: "GATEWAY_NONE"), after: nil, limit: 5).entries.isEmpty)
    }

    @Test func aCursorSurvivesItsTextWhateverTheNodeIdHolds() {
        for node in ["gw-a", "gw.a.b", "ünïcode node", ""] {
            let cursor = AuditCursor(timeMicros: 1_800_000_000_000_123, seq: 42, nodeID: node)
            #expect(AuditCursor(text: cursor.text) == (node.isEmpty ? nil : cursor), "\(node)")
        }
        for text in ["", "1.2", "1.2.", "-1.2.61", "1.+2.61", "1.2.6", "1.2.zz", "1.2.6G", "1234567890123456789.2.61"] {
            #expect(AuditCursor(text: text) == nil, "\(text)")
        }
    }

    @Test(.enabled(if: AuditPostgresTests.serverURL != nil || AuditPostgresTests.required, "needs PostgreSQL: run under bin/with-postgres"))
    func pagesOfAPostgreSQLTrailMergeEveryChainByTimeAsTheExportDoes() async throws {
        let url = try await AuditPostgresTests.database()
        let a = AuditPostgresTests.writer(url, node: "gw-a")
        let b = AuditPostgresTests.writer(url, node: "gw.b")
        for index in 0..<20 {
            try await a.record(Fixtures.record(index, timeMicros: 1_800_000_000_000_000 + Int64(index * 2)), on: Fixtures.loop).get()
            // Two records of b share a time with one of a: the cursor's node and sequence break the tie.
            try await b.record(Fixtures.record(index, timeMicros: 1_800_000_000_000_000 + Int64(index * 2 + index % 2)), on: Fixtures.loop).get()
        }
        await a.shutdown()
        await b.shutdown()
        let all = try Self.exported(url)
        #expect(all.count == 40)
        #expect(try Self.walk(url, limit: 3).map(\.hash) == all.map(\.hash))
        let request = AuditFilter(requestID: "req-4")
        #expect(try Self.walk(url, request, limit: 1).map(\.nodeID) == ["gw-a", "gw.b"])
        let range = AuditFilter(sinceMicros: 1_800_000_000_000_010, untilMicros: 1_800_000_000_000_020, callerID: "caller-1")
        #expect(try Self.walk(url, range, limit: 2).map(\.hash) == Self.exported(url, range).map(\.hash))
    }
}
