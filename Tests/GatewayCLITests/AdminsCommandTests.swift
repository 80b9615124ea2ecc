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

    @Test func adminsAddTakesACertificateFingerprintThatNamesOneAccount() async throws {
        let log = Transcript()
        try await run(["keys", "init"], transcript: log)
        // Generated, not written out: no key-shaped literal in the source.
        let fingerprint = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let colons = stride(from: 0, to: 64, by: 2).map { offset -> String in
            let start = fingerprint.index(fingerprint.startIndex, offsetBy: offset)
            return fingerprint[start..<fingerprint.index(start, offsetBy: 2)].uppercased()
        }.joined(separator: ":")
        let added = try await run(["admins", "add", "night", "--role", "viewer", "--certificate-fingerprint", colons], transcript: log)
        #expect(added.stdout.hasPrefix("adm_kgw_"), "an account with a certificate still gets its (bound) token")
        let listed = try await run(["admins", "list"], transcript: log)
        #expect(listed.stdout.contains("night\tviewer\tadded ") && listed.stdout.contains("\tcertificate \(fingerprint)"))
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("data/gateway.sqlite").path)
        #expect(try await store.adminAccount(certificateFingerprint: fingerprint)?.name == "night")
        #expect(
            try await run(["admins", "add", "twin", "--role", "security", "--certificate-fingerprint", fingerprint], expect: 1, transcript: log)
                .stderr.contains("already holds the certificate"))
        #expect(
            try await run(["admins", "add", "odd", "--role", "viewer", "--certificate-fingerprint", "abc"], expect: 1, transcript: log)
                .stderr.contains("--certificate-fingerprint must be a SHA-256 fingerprint"))
        #expect(try await store.adminAccounts().map(\.name) == ["night"])
    }

    @Test func adminsAddNoTokenMakesACertificateOnlyAccount() async throws {
        let log = Transcript()
        try await run(["keys", "init"], transcript: log)
        let fingerprint = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let refused = try await run(["admins", "add", "lonely", "--role", "viewer", "--no-token"], expect: 1, transcript: log)
        #expect(refused.stderr.contains("needs --certificate-fingerprint"), "\(refused.stderr)")
        let added = try await run(["admins", "add", "badge", "--role", "operator", "--certificate-fingerprint", fingerprint, "--no-token"], transcript: log)
        #expect(added.stdout.isEmpty, "no token is printed, since none exists: \(added.stdout)")
        #expect(added.stderr.contains("certificate only: no token was issued"))
        let listed = try await run(["admins", "list"], transcript: log)
        #expect(listed.stdout.contains("badge\toperator\tadded ") && listed.stdout.contains("\tcertificate \(fingerprint) (no token)"), "\(listed.stdout)")
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("data/gateway.sqlite").path)
        let account = try #require(try await store.adminAccount(certificateFingerprint: fingerprint))
        #expect(account.name == "badge" && !account.hasToken && account.tokenHash.isEmpty)
        #expect(try await store.adminAccounts().map(\.name) == ["badge"], "the refused one was not added")
    }
}
