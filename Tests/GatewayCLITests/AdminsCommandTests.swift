import Foundation
import GatewayCore
import GatewayStore
import Testing

extension CLITests {
    @Test func adminsAddPrintsTheTokenOnceAndStoresOnlyItsHash() async throws {
        let log = Transcript()
        try await run(["keys", "init"], transcript: log)
        let added = try await run(["admins", "add", "alice", "--role", "operator"], transcript: log)
        let token = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("adm_kgw_") && token.utf8.count == 4 + 64)
        let presented = try #require(AdminToken.parse(token[...]))
        #expect(added.stderr.contains("shown only this once"))
        try await run(["admins", "add", "alice", "--role", "viewer"], expect: 1, transcript: log)
        try await run(["admins", "add", "bob", "--role", "root"], expect: 64, transcript: log)
        #expect(try await run(["admins", "add", "krn:x", "--role", "viewer"], expect: 1, transcript: log).stderr.contains("an admin name may not start with 'krn:'"))

        let listed = try await run(["admins", "list"], transcript: log)
        #expect(listed.stdout.hasPrefix("alice\toperator\tadded "))
        // The store holds the hash of the secret half, which matches; the token itself is nowhere in it.
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("data/gateway.sqlite").path)
        let account = try #require(try await store.adminAccounts().first)
        #expect(presented.matches(storedHash: account.tokenHash))
        let raw = try Data(contentsOf: directory.appendingPathComponent("data/gateway.sqlite"))
            + ((try? Data(contentsOf: directory.appendingPathComponent("data/gateway.sqlite-wal"))) ?? Data())
        #expect(raw.range(of: Data(token.suffix(43).utf8)) == nil)

        try await run(["admins", "remove", "alice"], transcript: log)
        try await run(["admins", "remove", "alice"], expect: 1, transcript: log)
        #expect(try await run(["admins", "list"], transcript: log).stdout.isEmpty)
        // Only `add` printed the token.
        #expect(log.text.components(separatedBy: token.suffix(43)).count == 2)
    }
}
