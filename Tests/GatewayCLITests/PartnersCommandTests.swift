import Foundation
import GatewayApp
import GatewayCore
import GatewayStore
import GatewayTestSupport
import Testing

extension CLITests {
    /// `partners update` and `partners remove` refuse what the admin API refuses, with its words, and change nothing
    /// then; made, each appends one change-log event by the OS user for the running nodes to audit; no secret of the
    /// partner is printed or stored in the clear.
    @Test func partnersUpdateAndRemoveCheckAsTheAPIAndAreLogged() async throws {
        let log = Transcript()
        // A new default release is checked against the calendar, which needs the catalogue.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(
            of: "catalogue: catalogue/klarna-endpoints.tsv", with: "catalogue: " + root.appendingPathComponent("config/catalogue/operations.tsv").path)
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let release = try #require(ReleasePolicy.klarnaCalendar.releases.last { $0.isAvailable(in: .test, on: AdminService.today()) }?.id)
        let user = "ops-\(UInt32.random(in: 0...UInt32.max))"
        func generatedKey(_ environment: String) -> String {
            "klarna_\(environment)_api_" + (0..<24).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
        }
        let apiKey = generatedKey("test")
        let newKey = generatedKey("test")
        let pki = try TestPKI()
        let identity = try pki.issueClient(commonName: "acq mTLS")
        let renewed = try pki.issueClient(commonName: "acq mTLS renewed")
        let (certificate, key) = try pki.write(identity, to: directory, name: "acq")
        let (renewedCertificate, renewedKey) = try pki.write(renewed, to: directory, name: "acq-renewed")
        let liveKeyFile = try write(generatedKey("live"), "live.key")
        @discardableResult
        func cli(_ arguments: [String], stdin: String? = nil, expect status: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation) async throws -> (
            stdout: String, stderr: String
        ) {
            try await run(arguments, stdin: stdin, expect: status, environment: ["USER": user, "SUDO_USER": user], transcript: log, sourceLocation: sourceLocation)
        }

        try await cli(["keys", "init"])
        try await cli(
            ["partners", "add", "acq", "--environment", "test", "--api-key-file", "-", "--client-cert", certificate.path, "--client-key", key.path],
            stdin: apiKey)
        try await cli(["merchants", "add", "m1", "--partner", "acq", "--account", "krn:partner:global:account:test:M1"])
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("data/gateway.sqlite").path)
        let added = try #require(try await store.partner(id: "acq"))

        // Refused, each with the admin API's words (its 400s and 409 carry the same `AdminService` messages): nothing changes.
        let refusals: [([String], String)] = [
            (["partners", "update", "acq"], "give at least one of --base-url"),
            // A refused credential leaves the settings given with it unchanged too: everything is checked first.
            (["partners", "update", "acq", "--auth-form", "empty-user", "--api-key-file", liveKeyFile], "is a live key but the environment is test"),
            (["partners", "update", "acq", "--auth-form", "empty-user", "--client-cert", renewedCertificate.path, "--client-key", key.path], "does not match"),
            (["partners", "update", "acq", "--client-cert", renewedCertificate.path], "--client-cert and --client-key go together"),
            (["partners", "update", "acq", "--api-key-file", "-", "--client-key", "-", "--client-cert", renewedCertificate.path], "only one secret can be read from standard input"),
            (["partners", "update", "acq", "--default-release", release, "--clear-default-release"], "at most one of --default-release"),
            (["partners", "update", "acq", "--base-url", "http://localhost:1"], "base URL 'http://localhost:1' is not https://host[:port][/prefix]"),
            (["partners", "update", "acq", "--base-url", "https://api-global.klarna.com"], "serves live, but the partner is test"),
            (["partners", "update", "acq", "--auth-form", "basic"], "--auth-form must be raw or empty-user"),
            (["partners", "update", "acq", "--default-release", "r999"], "unknown release 'r999'"),
            (["partners", "update", "ghost", "--auth-form", "raw"], "no partner with id 'ghost'"),
            (["partners", "remove", "acq"], "partner 'acq' is used by 1 merchant(s); move or remove them first"),
            (["partners", "remove", "ghost"], "no partner with id 'ghost'"),
        ]
        for (arguments, message) in refusals {
            let refused = try await cli(arguments, expect: 1)
            #expect(refused.stderr.hasPrefix("error: ") && refused.stderr.contains(message), "\(arguments): \(refused.stderr)")
        }
        #expect(try await store.partner(id: "acq") == added)
        #expect(try await store.adminEvents().map(\.action) == ["partners.add", "merchants.add"])

        // Made: the settings change, the secrets stay as they were (by reference and version).
        let changed = try await cli(
            ["partners", "update", "acq", "--base-url", "https://localhost:8443/klarna", "--auth-form", "empty-user", "--default-release", release])
        #expect(changed.stdout.hasPrefix("partner acq: base url https://localhost:8443/klarna, auth form empty-user, default release \(release), "))
        var expected = added
        expected.baseURL = "https://localhost:8443/klarna"
        expected.authForm = .emptyUser
        expected.defaultRelease = release
        #expect(try await store.partner(id: "acq") == expected)
        #expect(try await cli(["partners", "show", "acq"]).stdout.contains("default release:     \(release)\n"))
        try await cli(["partners", "update", "acq", "--clear-default-release"])
        #expect(try await store.partner(id: "acq")?.defaultRelease == nil)

        // New credentials, the key from standard input: sealed as the next versions, opening to exactly what was given.
        let replaced = try await cli(
            ["partners", "update", "acq", "--api-key-file", "-", "--client-cert", renewedCertificate.path, "--client-key", renewedKey.path], stdin: newKey)
        #expect(replaced.stdout.contains("api key partner:acq:api-key@v2") && replaced.stdout.contains("client key partner:acq:client-key@v2"), "\(replaced.stdout)")
        #expect(replaced.stdout.contains("certificate sha256 \(renewed.fingerprint)"))
        let opened = try #require(try await AdminService.open(config: try ConfigLoader.loadGateway(path: config, scope: .administration), environment: [:])
            .loadCredentials().partners.first)
        #expect(opened.authorization == BasicAuthorization.header(for: Secret(newKey), form: .emptyUser))
        #expect(opened.clientIdentity.privateKeyPEM == Secret(renewed.privateKeyPEM) && opened.clientIdentity.fingerprint == renewed.fingerprint)

        // Removed once its merchant is gone: the partner and every version of its sealed secrets.
        try await cli(["merchants", "remove", "m1"])
        #expect(try await cli(["partners", "remove", "acq"]).stdout == "removed partner acq and its sealed secrets\n")
        #expect(try await store.partner(id: "acq") == nil)
        #expect(try await store.sealedSecrets().allSatisfy { $0.owner != SecretOwner.partner("acq") })
        try await cli(["partners", "remove", "acq"], expect: 1)

        let events = try await store.adminEvents()
        try #require(
            events.map(\.action) == [
                "partners.add", "merchants.add", "partners.update", "partners.update", "partners.rotate-key", "partners.rotate-cert", "merchants.remove",
                "partners.remove",
            ])
        #expect(events.allSatisfy { $0.actor == user && $0.auditedBy == nil })
        #expect(events[2].detail == "acq base url https://localhost:8443/klarna auth form empty-user default release \(release)")
        #expect(events[3].detail == "acq default release none")
        #expect(events[4].detail == "acq api key partner:acq:api-key@v2")
        #expect(events[7].detail == "acq")

        // No secret printed, logged in an event, or stored in the clear.
        // A PKCS#8 P-256 key's body is a fixed 36-byte header (48 base64 characters), the secret scalar, then the public
        // key, which the stored certificate holds too: the scalar is the needle.
        let keyBodies = [identity, renewed].map {
            secretPart(ofPrivateKeyPEM: $0.privateKeyPEM)
        }
        let secrets = [apiKey, String(apiKey.suffix(20)), newKey, String(newKey.suffix(20))] + keyBodies
        for secret in secrets {
            #expect(!log.text.contains(secret), "a command printed a secret")
            #expect(!events.contains { $0.detail.contains(secret) }, "an event holds a secret")
        }
        for suffix in ["", "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: directory.appendingPathComponent("data/gateway.sqlite" + suffix).path) else { continue }
            for secret in secrets { #expect(bytes.range(of: Data(secret.utf8)) == nil, "a secret in the store\(suffix)") }
        }
    }
}
